//! The isolate side: serves a step's `ModuleSet` to deno_core's module loader and to `require()`, and
//! keeps V8's code cache for package files.
//!
//! The code cache lives in this thread (a worker process's step thread): it is made by this worker's own
//! isolates and used only by them, keyed by a hash of the source the supervisor sent. It is never shared
//! between workers, so a worker taken over through a V8 bug cannot plant compiled code in another.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use deno_core::{
    ModuleLoadOptions, ModuleLoadReferrer, ModuleLoadResponse, ModuleLoader, ModuleResolveResponse,
    ModuleSource, ModuleSourceCode, ModuleSpecifier, ModuleType, RequestedModuleType,
    ResolutionKind, SourceCodeCacheInfo,
};
use deno_error::JsErrorBox;

use super::{builtins, display_name, Format, ModuleSet, Target};

/// Where the CommonJS machinery (`js/node/_cjs.js`) is imported from by a CommonJS module's facade.
pub const CJS_SPECIFIER: &str = "codestep:cjs";

/// Most bytes of code cache a thread keeps.
const MAX_CACHE_BYTES: usize = 256 << 20;

thread_local! {
    /// Package sources by hash, kept for the worker's life (the supervisor sends each once).
    static SOURCES: RefCell<HashMap<u64, Rc<str>>> = RefCell::new(HashMap::new());
    static CODE_CACHE: RefCell<CodeCache> = RefCell::new(CodeCache::default());
}

/// A hash of a built-in Node module's source, computed once per process.
fn builtin_hash(specifier: &str, source: &str) -> u64 {
    use std::sync::{Mutex, OnceLock};
    static HASHES: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let map = HASHES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().expect("builtin hashes");
    *map.entry(specifier.to_string()).or_insert_with(|| {
        use sha2::Digest;
        let d = sha2::Sha256::digest(source.as_bytes());
        u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
    })
}

/// Compiled code by source hash, and the bytes it holds.
#[derive(Default)]
struct CodeCache(HashMap<u64, Rc<[u8]>>, usize);

/// deno_core's callbacks for the code cache of functions it compiles (`require()`'s modules).
type GetCodeCache =
    Box<dyn Fn(&ModuleSpecifier, &[u16]) -> Result<SourceCodeCacheInfo, JsErrorBox>>;
type CodeCacheReady = Box<dyn Fn(ModuleSpecifier, u64, &[u8])>;

fn cached(hash: u64) -> Option<Rc<[u8]>> {
    CODE_CACHE.with(|c| c.borrow().0.get(&hash).cloned())
}

fn store(hash: u64, data: &[u8]) {
    CODE_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.1 + data.len() > MAX_CACHE_BYTES {
            c.0.clear();
            c.1 = 0;
        }
        c.1 += data.len();
        c.0.insert(hash, Rc::from(data));
    })
}

/// A step's module set, indexed.
pub struct Loaded {
    main: String,
    env: Vec<(String, String)>,
    files: HashMap<String, super::ModuleFile>,
    links: HashMap<(String, String), Target>,
    /// The files served so far (imported or required), for `preload`.
    served: RefCell<Vec<String>>,
}

impl Loaded {
    /// Fails when a source the supervisor says this worker has is not here (a protocol error).
    pub fn new(set: ModuleSet, env: Vec<(String, String)>) -> Result<Loaded, String> {
        let mut files = HashMap::with_capacity(set.files.len());
        SOURCES.with(|sources| {
            let mut sources = sources.borrow_mut();
            for mut f in set.files {
                if f.hash != 0 {
                    if f.cached {
                        let Some(s) = sources.get(&f.hash) else {
                            return Err(format!("the worker lost the source of {}", f.id));
                        };
                        f.source = s.to_string();
                        f.cached = false;
                    } else {
                        sources.insert(f.hash, Rc::from(f.source.as_str()));
                    }
                }
                files.insert(f.id.clone(), f);
            }
            Ok(())
        })?;
        Ok(Loaded {
            main: set.main,
            env,
            files,
            links: set.links.into_iter().map(|(r, s, t)| ((r, s), t)).collect(),
            served: RefCell::new(Vec::new()),
        })
    }

    pub fn main(&self) -> &str {
        &self.main
    }

    fn target(&self, referrer: &str, specifier: &str) -> Result<&Target, String> {
        self.links
            .get(&(referrer.to_string(), specifier.to_string()))
            .ok_or_else(|| {
                format!(
                    "cannot import \"{specifier}\" from {}: only imports written as string literals are resolved, and this one was not seen",
                    display_name(referrer)
                )
            })
    }

    /// For `require(specifier)` in `referrer`: `b:name` for a built-in, `c:`/`j:`/`e:` + id for a
    /// CommonJS, JSON or ES module.
    pub fn require(&self, referrer: &str, specifier: &str) -> Result<String, String> {
        match self.target(referrer, specifier)? {
            Target::Builtin(name) if builtins::refused(name).is_some() => {
                Ok(format!("r:{name}\n{}", builtins::refusal(name)))
            }
            Target::Builtin(name) => Ok(format!("b:{name}")),
            Target::Error(e) => Err(e.clone()),
            Target::Module(id) => {
                let f = self
                    .files
                    .get(id)
                    .ok_or_else(|| format!("cannot require \"{specifier}\": not loaded"))?;
                let tag = match f.format {
                    Format::Cjs => "c",
                    Format::Json => "j",
                    Format::Esm => "e",
                };
                Ok(format!("{tag}:{id}"))
            }
        }
    }

    pub fn source(&self, id: &str) -> Option<&str> {
        let file = self.files.get(id)?;
        self.served.borrow_mut().push(id.to_string());
        Some(file.source.as_str())
    }

    /// The ids of the files served so far, each once.
    pub fn served(&self) -> Vec<String> {
        let mut ids = self.served.borrow().clone();
        ids.sort();
        ids.dedup();
        ids
    }

    fn hash_of(&self, id: &str) -> u64 {
        self.files.get(id).map_or(0, |f| f.hash)
    }
}

/// The module loader of every step isolate. It holds no module set until a job arrives.
#[derive(Default)]
pub struct StepLoader {
    loaded: RefCell<Option<Rc<Loaded>>>,
    /// For an isolate that makes a snapshot (`preload`), where V8 cannot make code caches.
    no_code_cache: std::cell::Cell<bool>,
}

impl StepLoader {
    /// A loader that neither uses nor makes code caches.
    pub fn without_code_cache() -> StepLoader {
        let loader = StepLoader::default();
        loader.no_code_cache.set(true);
        loader
    }

    pub fn set(&self, loaded: Rc<Loaded>) {
        *self.loaded.borrow_mut() = Some(loaded);
    }

    fn loaded(&self) -> Result<Rc<Loaded>, JsErrorBox> {
        self.loaded
            .borrow()
            .clone()
            .ok_or_else(|| JsErrorBox::generic("no modules"))
    }

    /// The code cache callbacks for `require()`'s compiled functions.
    pub fn eval_cache_callbacks(loaded: Rc<Loaded>) -> (GetCodeCache, CodeCacheReady) {
        let get = Box::new(move |url: &ModuleSpecifier, _source: &[u16]| {
            let hash = loaded.hash_of(url.as_str());
            if hash == 0 {
                return Err(JsErrorBox::generic("not cached"));
            }
            Ok(SourceCodeCacheInfo {
                hash,
                data: cached(hash).map(|d| Cow::Owned(d.to_vec())),
            })
        });
        let ready = Box::new(|_url: ModuleSpecifier, hash: u64, data: &[u8]| store(hash, data));
        (get, ready)
    }
}

fn error(message: String) -> JsErrorBox {
    JsErrorBox::new("Error", message)
}

/// Names a package's ES module may import from a refused built-in; each throws when called.
const REFUSED_NAMES: &[&str] = &[
    "readFile",
    "readFileSync",
    "writeFile",
    "writeFileSync",
    "existsSync",
    "statSync",
    "stat",
    "lstat",
    "lstatSync",
    "readdir",
    "readdirSync",
    "mkdir",
    "mkdirSync",
    "createReadStream",
    "createWriteStream",
    "promises",
    "constants",
    "access",
    "accessSync",
    "realpathSync",
    "unlink",
    "unlinkSync",
    "spawn",
    "spawnSync",
    "exec",
    "execSync",
    "execFile",
    "execFileSync",
    "fork",
    "request",
    "get",
    "Agent",
    "createServer",
    "connect",
    "createConnection",
    "Socket",
    "isIP",
    "isIPv4",
    "isIPv6",
    "globalAgent",
    "STATUS_CODES",
    "METHODS",
    "Worker",
    "isMainThread",
    "parentPort",
    "workerData",
    "lookup",
    "createInterface",
    "isatty",
    "performance",
];

impl ModuleLoader for StepLoader {
    fn resolve(
        &self,
        specifier: &str,
        referrer: &str,
        kind: ResolutionKind,
    ) -> ModuleResolveResponse {
        if matches!(kind, ResolutionKind::MainModule) {
            return ModuleSpecifier::parse(specifier).map_err(JsErrorBox::from_err);
        }
        let loaded = self.loaded()?;
        // The root of a side module's graph (the preloading module, `preload`), given with its code.
        if referrer == "." && specifier == loaded.main() {
            return ModuleSpecifier::parse(specifier).map_err(JsErrorBox::from_err);
        }
        if specifier == CJS_SPECIFIER {
            // Only a CommonJS module's facade (which has the CommonJS module's id) imports it.
            return match loaded.files.get(referrer) {
                Some(f) if f.format == Format::Cjs => {
                    ModuleSpecifier::parse(CJS_SPECIFIER).map_err(JsErrorBox::from_err)
                }
                _ if referrer
                    .strip_prefix("node:")
                    .is_some_and(|n| builtins::refused(n).is_some()) =>
                {
                    ModuleSpecifier::parse(CJS_SPECIFIER).map_err(JsErrorBox::from_err)
                }
                _ => Err(error(format!("cannot import \"{specifier}\""))),
            };
        }
        match loaded.target(referrer, specifier).map_err(error)? {
            Target::Module(id) => ModuleSpecifier::parse(id).map_err(JsErrorBox::from_err),
            Target::Builtin(name) => {
                ModuleSpecifier::parse(&format!("node:{name}")).map_err(JsErrorBox::from_err)
            }
            Target::Error(e) => Err(error(e.clone())),
        }
    }

    fn load(
        &self,
        specifier: &ModuleSpecifier,
        _referrer: Option<&ModuleLoadReferrer>,
        options: ModuleLoadOptions,
    ) -> ModuleLoadResponse {
        ModuleLoadResponse::Sync(self.load_sync(specifier, options.requested_module_type))
    }

    /// The code cache of a lazy script (a Node module, Web Crypto or deno_web's streams), compiled by
    /// deno_core.
    fn get_code_cache(
        &self,
        specifier: &ModuleSpecifier,
        source: &str,
    ) -> Option<SourceCodeCacheInfo> {
        if self.no_code_cache.get() {
            return None;
        }
        let builtin = crate::engine::runtime::lazy_script_source(specifier.as_str())?;
        // The key covers the whole source (deno_core wraps it before compiling; the wrapping is fixed).
        let hash = builtin_hash(specifier.as_str(), builtin) ^ (source.len() as u64);
        Some(SourceCodeCacheInfo {
            hash,
            data: cached(hash).map(|d| Cow::Owned(d.to_vec())),
        })
    }

    fn code_cache_ready(
        &self,
        _specifier: ModuleSpecifier,
        hash: u64,
        code_cache: &[u8],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        store(hash, code_cache);
        Box::pin(async {})
    }
}

impl StepLoader {
    fn load_sync(
        &self,
        specifier: &ModuleSpecifier,
        requested: RequestedModuleType,
    ) -> Result<ModuleSource, JsErrorBox> {
        let loaded = self.loaded()?;
        let id = specifier.as_str();
        if let Some(name) = id.strip_prefix("node:") {
            // A refused built-in imported by a package (a step's own import of one never resolves).
            if builtins::refused(name).is_some() {
                return Ok(ModuleSource::new(
                    ModuleType::JavaScript,
                    ModuleSourceCode::String(refused_facade(name).into()),
                    specifier,
                    None,
                ));
            }
            return Err(error(format!("cannot import \"{id}\"")));
        }
        let file = loaded
            .files
            .get(id)
            .ok_or_else(|| error(format!("cannot import {}: not found", display_name(id))))?;
        loaded.served.borrow_mut().push(id.to_string());
        let _ = requested;
        let (code, cache) = match file.format {
            Format::Esm => {
                let cache =
                    (file.hash != 0 && !self.no_code_cache.get()).then(|| SourceCodeCacheInfo {
                        hash: file.hash,
                        data: cached(file.hash).map(|d| Cow::Owned(d.to_vec())),
                    });
                (file.source.clone(), cache)
            }
            Format::Json => (format!("export default {};", file.source.trim()), None),
            Format::Cjs => (cjs_facade(id, &file.exports), None),
        };
        Ok(ModuleSource::new(
            ModuleType::JavaScript,
            ModuleSourceCode::String(code.into()),
            specifier,
            cache,
        ))
    }
}

fn js_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// The ES module an `import` of a CommonJS module gets: `module.exports` as the default export, and the
/// names the scanner found as named exports.
fn cjs_facade(id: &str, names: &[String]) -> String {
    let mut out = format!(
        "import {{ load }} from \"{CJS_SPECIFIER}\";\nconst m = load({});\nexport default m;\n",
        js_string(id)
    );
    let mut n = 0;
    for name in names {
        if name == "default" || name.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "const _{n} = m?.[{0}];\nexport {{ _{n} as {0} }};\n",
            js_string(name)
        ));
        n += 1;
    }
    out
}

fn refused_facade(name: &str) -> String {
    let mut out = format!(
        "import {{ refused }} from \"{CJS_SPECIFIER}\";\nconst m = refused({}, {});\nexport default m;\n",
        js_string(name),
        js_string(&builtins::refusal(name))
    );
    for (n, export) in REFUSED_NAMES.iter().enumerate() {
        out.push_str(&format!(
            "const _{n} = m[{0}];\nexport {{ _{n} as {0} }};\n",
            js_string(export)
        ));
    }
    out
}

impl crate::engine::node_ops::StepModules for Loaded {
    fn require(&self, referrer: &str, specifier: &str) -> Result<String, String> {
        Loaded::require(self, referrer, specifier)
    }
    fn source(&self, id: &str) -> Option<String> {
        Loaded::source(self, id).map(str::to_string)
    }
    fn env(&self) -> Vec<(String, String)> {
        self.env.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runtime;

    fn cached_scripts() -> usize {
        CODE_CACHE.with(|c| c.borrow().0.len())
    }

    /// deno_web's streams are not in the snapshot: bodies made from strings, bytes, forms and search
    /// params, and read whole, never load them, and the first touch of a stream compiles them (and keeps their code cache,
    /// like a Node module's). If anything loaded them at snapshot time, the touch would compile nothing.
    #[test]
    fn streams_load_on_first_use_not_from_the_snapshot() {
        runtime::init_platform();
        let tokio_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let _enter = tokio_rt.enter();
        let before = cached_scripts();
        let mut step =
            runtime::create(64 << 20, runtime::BufferBudget::new(64 << 20)).expect("step runtime");
        let whole = r#"
            new Response('{"a":1}').json();
            new Request("https://e.com/", { method: "POST", body: "x" }).text();
            new Request("https://e.com/", { method: "POST", body: new Uint8Array([1]) }).arrayBuffer();
            new Request("https://e.com/", { method: "POST", body: new URLSearchParams("a=1") });
            const form = new FormData();
            form.append("a", "1");
            new Request("https://e.com/", { method: "POST", body: form }).text();
            new Blob(["x"]).size;
            new TextDecoder().decode(new TextEncoder().encode("é"));
        "#;
        step.js
            .execute_script("whole_bodies.js", whole)
            .expect("bodies read whole");
        assert_eq!(
            cached_scripts(),
            before,
            "reading bodies whole loaded a script"
        );
        let touch = "if (typeof new Response('x').body.getReader !== 'function') throw 0";
        step.js
            .execute_script("touch.js", touch)
            .expect("a body's stream");
        assert_eq!(
            cached_scripts(),
            before + 1,
            "a body's stream did not load the streams: the snapshot holds them"
        );
    }
    /// The snapshot for servers with a package directory is the same with the streams in it.
    #[test]
    fn the_snapshot_for_packages_holds_the_streams() {
        let (lean, with_streams) = runtime::snapshot_sizes();
        assert!(
            with_streams > lean + 200_000,
            "the snapshot with streams is {with_streams} bytes, the one without {lean}"
        );
    }
}
