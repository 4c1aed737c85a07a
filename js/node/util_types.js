// node:util/types - type checks on V8 values.
(function () {
const { core } = __bootstrap;
const ct = core;
const tag = (v) => Object.prototype.toString.call(v).slice(8, -1);
const isTypedArrayTag = (v) => ArrayBuffer.isView(v) && !(v instanceof DataView);
const types = {
  isAnyArrayBuffer: (v) => v instanceof ArrayBuffer || (typeof SharedArrayBuffer !== "undefined" && v instanceof SharedArrayBuffer),
  isArrayBuffer: (v) => v instanceof ArrayBuffer,
  isSharedArrayBuffer: (v) => typeof SharedArrayBuffer !== "undefined" && v instanceof SharedArrayBuffer,
  isArrayBufferView: (v) => ArrayBuffer.isView(v),
  isAsyncFunction: (v) => typeof v === "function" && tag(v) === "AsyncFunction",
  isGeneratorFunction: (v) => typeof v === "function" && (tag(v) === "GeneratorFunction" || tag(v) === "AsyncGeneratorFunction"),
  isGeneratorObject: (v) => tag(v) === "Generator",
  isBigInt64Array: (v) => v instanceof BigInt64Array,
  isBigUint64Array: (v) => v instanceof BigUint64Array,
  isBooleanObject: (v) => typeof v === "object" && v !== null && tag(v) === "Boolean",
  isNumberObject: (v) => typeof v === "object" && v !== null && tag(v) === "Number",
  isStringObject: (v) => typeof v === "object" && v !== null && tag(v) === "String",
  isSymbolObject: (v) => typeof v === "object" && v !== null && tag(v) === "Symbol",
  isBigIntObject: (v) => typeof v === "object" && v !== null && tag(v) === "BigInt",
  isBoxedPrimitive: (v) => typeof v === "object" && v !== null && ["Boolean", "Number", "String", "Symbol", "BigInt"].includes(tag(v)),
  isDataView: (v) => v instanceof DataView,
  isDate: (v) => v instanceof Date,
  isFloat32Array: (v) => v instanceof Float32Array,
  isFloat64Array: (v) => v instanceof Float64Array,
  isInt8Array: (v) => v instanceof Int8Array,
  isInt16Array: (v) => v instanceof Int16Array,
  isInt32Array: (v) => v instanceof Int32Array,
  isUint8Array: (v) => v instanceof Uint8Array,
  isUint8ClampedArray: (v) => v instanceof Uint8ClampedArray,
  isUint16Array: (v) => v instanceof Uint16Array,
  isUint32Array: (v) => v instanceof Uint32Array,
  isTypedArray: isTypedArrayTag,
  isMap: (v) => v instanceof Map,
  isSet: (v) => v instanceof Set,
  isWeakMap: (v) => v instanceof WeakMap,
  isWeakSet: (v) => v instanceof WeakSet,
  isMapIterator: (v) => tag(v) === "Map Iterator",
  isSetIterator: (v) => tag(v) === "Set Iterator",
  isNativeError: (v) => v instanceof Error,
  isPromise: (v) => v instanceof Promise,
  isProxy: (v) => ct.isProxy?.(v) ?? false,
  isRegExp: (v) => v instanceof RegExp,
  isModuleNamespaceObject: (v) => typeof v === "object" && v !== null && tag(v) === "Module",
  isExternal: () => false,
  isArgumentsObject: (v) => tag(v) === "Arguments",
  isKeyObject: () => false,
  isCryptoKey: (v) => typeof CryptoKey !== "undefined" && v instanceof CryptoKey,
};
types.default = types;
return types;
})();
