//! `structuredClone` for steps, in place of deno_core's `op_structured_clone`.
//!
//! Any object a step makes can claim to be a "host object" (`Symbol.for("Deno.core.hostObject")` is a
//! global symbol), and then its function decides what is serialized for it. deno_core's op reads that
//! back while V8 forbids JavaScript (deserialization): it looks the object's `type` up in the
//! registry of deserializers and casts what it finds to a function. A `type` nobody registered made
//! that cast panic inside a V8 callback, which aborts the process (the worker, or in-process the
//! whole server); a `type` found through a getter or a `toString` the step wrote ran JavaScript where
//! V8 forbids it, which is a fatal V8 error. One line of JS did either.
//!
//! Here every decision about a host object is made while serializing, where JavaScript may run: its
//! data must be an object whose `type` is a string naming a registered deserializer, or the clone
//! fails with a `TypeError` (the polyfill makes it a `DataCloneError`). The deserializer chosen is
//! kept in Rust and found again by its index; deserializing looks nothing up in JS objects, and calls
//! only that function, with JavaScript allowed again.
//!
//! Shared with `build.rs` (through `#[path]`), like `ops.rs`.

use std::cell::RefCell;
use std::rc::Rc;

use deno_core::op2;
use deno_core::v8;
use deno_core::v8::{ValueDeserializerHelper, ValueSerializerHelper};
use deno_error::JsErrorBox;

/// The brand deno_core and deno_web put on their host objects (`core.hostObjectBrand`).
const HOST_OBJECT_BRAND: &str = "Deno.core.hostObject";

struct Cloner<'a> {
    brand: v8::Local<'a, v8::Symbol>,
    /// The registry (`core.getCloneableDeserializers()`): a null-prototype object of functions.
    deserializers: v8::Local<'a, v8::Object>,
    /// The deserializer of each host object written so far, by the index written for it.
    chosen: Rc<RefCell<Vec<v8::Global<v8::Function>>>>,
}

impl Cloner<'_> {
    fn refuse(scope: &mut v8::PinScope<'_, '_>, message: &str) {
        if let Some(message) = v8::String::new(scope, message) {
            let error = v8::Exception::type_error(scope, message);
            scope.throw_exception(error);
        }
    }
}

impl v8::ValueSerializerImpl for Cloner<'_> {
    fn throw_data_clone_error<'s>(
        &self,
        scope: &mut v8::PinScope<'s, '_>,
        message: v8::Local<'s, v8::String>,
    ) {
        let error = v8::Exception::type_error(scope, message);
        scope.throw_exception(error);
    }

    fn has_custom_host_object(&self, _isolate: &v8::Isolate) -> bool {
        true
    }

    fn is_host_object<'s>(
        &self,
        scope: &mut v8::PinScope<'s, '_>,
        object: v8::Local<'s, v8::Object>,
    ) -> Option<bool> {
        object.has(scope, self.brand.into())
    }

    fn write_host_object<'s>(
        &self,
        scope: &mut v8::PinScope<'s, '_>,
        object: v8::Local<'s, v8::Object>,
        serializer: &dyn v8::ValueSerializerHelper,
    ) -> Option<bool> {
        let describe = object.get(scope, self.brand.into())?;
        let Ok(describe) = v8::Local::<v8::Function>::try_from(describe) else {
            Self::refuse(scope, "Unsupported object type");
            return None;
        };
        let data = describe.call(scope, object.into(), &[])?;
        let Ok(data) = v8::Local::<v8::Object>::try_from(data) else {
            Self::refuse(scope, "Unsupported object type");
            return None;
        };
        let type_key = v8::String::new(scope, "type")?;
        let kind = data.get(scope, type_key.into())?;
        if !kind.is_string() {
            Self::refuse(scope, "Unsupported object type");
            return None;
        }
        // A string key on a null-prototype object of data properties: no JavaScript runs.
        let found = self.deserializers.get(scope, kind)?;
        let Ok(deserializer) = v8::Local::<v8::Function>::try_from(found) else {
            Self::refuse(scope, "Unsupported object type");
            return None;
        };
        let mut chosen = self.chosen.borrow_mut();
        let index = u32::try_from(chosen.len()).ok()?;
        chosen.push(v8::Global::new(scope, deserializer));
        drop(chosen);
        serializer.write_uint32(index);
        serializer.write_value(scope.get_current_context(), data.into())
    }
}

impl v8::ValueDeserializerImpl for Cloner<'_> {
    fn read_host_object<'s>(
        &self,
        scope: &mut v8::PinScope<'s, '_>,
        deserializer: &dyn v8::ValueDeserializerHelper,
    ) -> Option<v8::Local<'s, v8::Object>> {
        let mut index = 0;
        let chosen = if deserializer.read_uint32(&mut index) {
            self.chosen.borrow().get(index as usize).cloned()
        } else {
            None
        };
        let data = deserializer.read_value(scope.get_current_context());
        let (Some(function), Some(data)) = (chosen, data) else {
            Self::refuse(scope, "could not deserialize value");
            return None;
        };
        let function = v8::Local::new(scope, &function);
        let recv = v8::null(scope).into();
        let scope = std::pin::pin!(v8::AllowJavascriptExecutionScope::new(scope));
        let scope = &mut scope.init();
        // `None` with the function's exception pending, which the deserializer passes on.
        let result = function.call(scope, recv, &[data])?;
        match v8::Local::<v8::Object>::try_from(result) {
            Ok(object) => Some(object),
            Err(_) => {
                Self::refuse(scope, "could not deserialize value");
                None
            }
        }
    }
}

/// `structuredClone(value)` with the registry of deserializers the polyfill passes.
#[op2(reentrant)]
pub fn op_codestep_structured_clone<'s>(
    scope: &mut v8::PinScope<'s, '_>,
    value: v8::Local<'s, v8::Value>,
    deserializers: v8::Local<'s, v8::Object>,
) -> Result<v8::Local<'s, v8::Value>, JsErrorBox> {
    let brand_name = v8::String::new(scope, HOST_OBJECT_BRAND)
        .ok_or_else(|| JsErrorBox::type_error("could not clone"))?;
    let brand = v8::Symbol::for_key(scope, brand_name);
    // Both delegates share what was chosen while serializing.
    let chosen = Rc::new(RefCell::new(Vec::new()));
    let cloner = || {
        Box::new(Cloner {
            brand,
            deserializers,
            chosen: chosen.clone(),
        })
    };
    let serializer = v8::ValueSerializer::new(scope, cloner());
    serializer.write_header();
    v8::tc_scope!(let scope, scope);
    let written = serializer.write_value(scope.get_current_context(), value);
    if scope.has_caught() || scope.has_terminated() {
        scope.rethrow();
        // Discarded: the exception is what JS sees.
        return Ok(v8::undefined(scope).into());
    }
    if written != Some(true) {
        return Err(JsErrorBox::type_error("could not serialize value"));
    }
    let bytes = serializer.release();
    let deserializer = v8::ValueDeserializer::new(scope, cloner(), &bytes);
    if deserializer.read_header(scope.get_current_context()) != Some(true) {
        return Err(JsErrorBox::range_error("could not deserialize value"));
    }
    let read = deserializer.read_value(scope.get_current_context());
    if scope.has_caught() || scope.has_terminated() {
        scope.rethrow();
        return Ok(v8::undefined(scope).into());
    }
    read.ok_or_else(|| JsErrorBox::range_error("could not deserialize value"))
}
