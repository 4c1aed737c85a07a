// A module a package's "browser" field maps to false: an empty object.
(function () {
return {};
})();
