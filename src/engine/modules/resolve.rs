//! Resolution, in the supervisor: a step's modules and the package files they import, gathered into the
//! `ModuleSet` a worker gets with the job.
//!
//! Files are read only from the operator's package directory: a path is canonicalised (symlinks
//! followed) and refused unless it is still inside the directory. Nothing is fetched from a network:
//! `https:`, `http:`, `file:` and `data:` specifiers are refused with the module named. Each file is read
//! once and kept, with what it imports already resolved; restart codestep after changing the directory.
//!
//! Package resolution follows Node's rules for `package.json`: `exports` (subpaths, patterns and
//! conditions) and `imports`, then `module` (for `import`) and `main`, then `index.js`. The conditions
//! are those of the Worker runtimes, `workerd`, `worker` and `browser`, before `import` or `require` and
//! `default`: codestep has `fetch` and web streams but no sockets and no files, which is what those
//! builds expect (Stripe's `worker` build uses fetch, its `default` one Node's `http`; see
//! `docs/packages.md`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::scan::{scan, Scan};
use super::{builtins, display_name, Format, ModuleFile, ModuleSet, Target};

/// The conditions tried for `import` and for `require`, in the package's order (Node's rule).
pub const IMPORT_CONDITIONS: &[&str] = &[
    "workerd", "worker", "browser", "import", "module", "default",
];
pub const REQUIRE_CONDITIONS: &[&str] = &["workerd", "worker", "browser", "require", "default"];

/// Most modules in one step's set, and most bytes of source.
const MAX_MODULES: usize = 5000;
const MAX_FILE_BYTES: u64 = 32 << 20;

const PACKAGE_PREFIX: &str = "file:///node_modules/";

/// The built-in an ignored module (`"browser": {"x": false}`) resolves to: an empty object.
pub const EMPTY: &str = "_empty";

/// A package file, read and resolved once.
struct PackageFile {
    file: ModuleFile,
    links: Vec<(String, Target)>,
}

/// The operator's package directory.
pub struct PackageDir {
    /// Canonical path of the `node_modules` directory.
    root: PathBuf,
    files: Mutex<HashMap<String, Arc<PackageFile>>>,
    manifests: Mutex<HashMap<PathBuf, Option<Arc<Value>>>>,
}

impl std::fmt::Debug for PackageDir {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("PackageDir")
            .field("root", &self.root)
            .finish()
    }
}

fn hash(source: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(source.as_bytes());
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Lexical normalisation: `a/./b/../c` → `a/c`; `None` when it climbs above its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(s) => out.push(s),
            Component::RootDir => out.push("/"),
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn url_like(specifier: &str) -> Option<&str> {
    let colon = specifier.find(':')?;
    let scheme = &specifier[..colon];
    (colon > 1
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.'))
    .then_some(scheme)
}

fn refuse_url(specifier: &str, scheme: &str) -> Target {
    let why = match scheme {
        "http" | "https" => "steps cannot load code from the network; the operator installs packages in the package directory",
        "file" => "steps cannot load files by path; import packages by name",
        _ => "only relative paths, package names and node: built-ins can be imported",
    };
    Target::Error(format!("cannot import \"{specifier}\": {why}"))
}

/// `@scope/name/sub` → (`@scope/name`, `./sub`).
fn split_package(specifier: &str) -> Option<(&str, String)> {
    let mut parts = specifier.splitn(3, '/');
    let first = parts.next()?;
    let (name_len, rest) = if first.starts_with('@') {
        let second = parts.next()?;
        (first.len() + 1 + second.len(), parts.next())
    } else {
        (first.len(), specifier.get(first.len() + 1..))
    };
    let name = &specifier[..name_len];
    if name.is_empty()
        || name.starts_with('.')
        || name.contains('\\')
        || name.contains('%')
        || name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return None;
    }
    let sub = match rest {
        Some(r) if !r.is_empty() => format!("./{r}"),
        _ => ".".to_string(),
    };
    Some((name, sub))
}

impl PackageDir {
    /// Opens the directory `dir`: a `node_modules` directory, or one that contains one.
    pub fn open(dir: &Path) -> Result<PackageDir, String> {
        let canon = dir
            .canonicalize()
            .map_err(|e| format!("package directory {}: {e}", dir.display()))?;
        if !canon.is_dir() {
            return Err(format!(
                "package directory {}: not a directory",
                dir.display()
            ));
        }
        let nested = canon.join("node_modules");
        let root = if nested.is_dir() {
            nested
                .canonicalize()
                .map_err(|e| format!("package directory {}: {e}", nested.display()))?
        } else {
            canon
        };
        if !root.starts_with(dir.canonicalize().unwrap_or_default()) {
            return Err(format!(
                "package directory {}: its node_modules is a link to elsewhere",
                dir.display()
            ));
        }
        Ok(PackageDir {
            root,
            files: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of `path` when it exists and is inside the directory, symlinks followed.
    fn inside(&self, path: &Path) -> Result<Option<PathBuf>, String> {
        let Some(norm) = normalize(path) else {
            return Err("it climbs out of the package directory".into());
        };
        if !norm.starts_with(&self.root) {
            return Err("it is outside the package directory".into());
        }
        match norm.canonicalize() {
            Ok(real) if real.starts_with(&self.root) => Ok(Some(real)),
            Ok(_) => Err("it links to a file outside the package directory".into()),
            Err(_) => Ok(None),
        }
    }

    fn is_file(&self, path: &Path) -> Result<Option<PathBuf>, String> {
        Ok(self.inside(path)?.filter(|p| p.is_file()))
    }

    fn id_of(&self, real: &Path) -> String {
        let rel = real.strip_prefix(&self.root).unwrap_or(real);
        format!("{PACKAGE_PREFIX}{}", rel.to_string_lossy())
    }

    fn path_of(&self, id: &str) -> Option<PathBuf> {
        id.strip_prefix(PACKAGE_PREFIX)
            .map(|rel| self.root.join(rel))
    }

    fn manifest(&self, dir: &Path) -> Option<Arc<Value>> {
        if let Some(m) = self.manifests.lock().expect("manifests").get(dir) {
            return m.clone();
        }
        let path = dir.join("package.json");
        let value = match self.is_file(&path) {
            Ok(Some(real)) => std::fs::read_to_string(real)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .map(Arc::new),
            _ => None,
        };
        self.manifests
            .lock()
            .expect("manifests")
            .insert(dir.to_path_buf(), value.clone());
        value
    }

    /// The nearest directory with a `package.json`, from `dir` up to the root.
    fn package_scope(&self, dir: &Path) -> Option<(PathBuf, Arc<Value>)> {
        let mut d = dir.to_path_buf();
        while d.starts_with(&self.root) && d != self.root {
            if let Some(m) = self.manifest(&d) {
                return Some((d, m));
            }
            if !d.pop() {
                break;
            }
        }
        None
    }

    /// Legacy file lookup: the path, then with `.js`, `.json`, `.cjs`, `.mjs`, then as a directory.
    fn probe(&self, path: &Path, kind: Kind) -> Result<Option<PathBuf>, String> {
        if let Some(p) = self.is_file(path)? {
            return Ok(Some(p));
        }
        let s = path.as_os_str().to_string_lossy().to_string();
        for ext in [".js", ".json", ".cjs", ".mjs"] {
            if let Some(p) = self.is_file(Path::new(&format!("{s}{ext}")))? {
                return Ok(Some(p));
            }
        }
        if self.inside(path)?.is_some_and(|p| p.is_dir()) {
            if let Some(m) = self.manifest(path) {
                let browser = m.get("browser").and_then(Value::as_str);
                let field = match kind {
                    Kind::Import => browser
                        .or_else(|| m.get("module").and_then(Value::as_str))
                        .or_else(|| m.get("main").and_then(Value::as_str)),
                    Kind::Require => browser.or_else(|| m.get("main").and_then(Value::as_str)),
                };
                if let Some(main) = field {
                    if let Some(p) = self.probe_file_only(&path.join(main))? {
                        return Ok(Some(p));
                    }
                }
            }
            for index in ["index.js", "index.json", "index.cjs", "index.mjs"] {
                if let Some(p) = self.is_file(&path.join(index))? {
                    return Ok(Some(p));
                }
            }
        }
        Ok(None)
    }

    fn probe_file_only(&self, path: &Path) -> Result<Option<PathBuf>, String> {
        if let Some(p) = self.is_file(path)? {
            return Ok(Some(p));
        }
        let s = path.as_os_str().to_string_lossy().to_string();
        for ext in [".js", ".json", ".cjs", ".mjs", "/index.js"] {
            if let Some(p) = self.is_file(Path::new(&format!("{s}{ext}")))? {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// Resolves a bare specifier from a module in `from_dir` (the root for the step's own modules).
    fn resolve_bare(&self, specifier: &str, from_dir: &Path, kind: Kind) -> Target {
        let Some((name, sub)) = split_package(specifier) else {
            return Target::Error(format!("cannot import \"{specifier}\": not a package name"));
        };
        // node_modules directories from the importer's up to the root.
        let mut candidates = Vec::new();
        let mut d = from_dir.to_path_buf();
        while d.starts_with(&self.root) && d != self.root {
            if d.file_name().is_some_and(|n| n != "node_modules") {
                candidates.push(d.join("node_modules").join(name));
            }
            if !d.pop() {
                break;
            }
        }
        candidates.push(self.root.join(name));
        for pkg in candidates {
            match self.inside(&pkg) {
                Ok(Some(real)) if real.is_dir() => {
                    return match self.resolve_in_package(&real, &sub, specifier, kind) {
                        Ok(p) => self.target_of(&p, specifier),
                        Err(e) => Target::Error(e),
                    }
                }
                Ok(_) => continue,
                Err(why) => return Target::Error(format!("cannot import \"{specifier}\": {why}")),
            }
        }
        Target::Error(format!(
            "cannot import \"{specifier}\": the package \"{name}\" is not installed in the operator's package directory"
        ))
    }

    fn resolve_in_package(
        &self,
        pkg: &Path,
        sub: &str,
        specifier: &str,
        kind: Kind,
    ) -> Result<PathBuf, String> {
        let manifest = self.manifest(pkg);
        if let Some(exports) = manifest.as_ref().and_then(|m| m.get("exports")) {
            let target = exports_target(exports, sub, kind.conditions()).ok_or_else(|| {
                format!("cannot import \"{specifier}\": the package does not export \"{sub}\" for these conditions ({})", kind.conditions().join(", "))
            })?;
            return self.package_target(pkg, &target, specifier);
        }
        let path = if sub == "." {
            pkg.to_path_buf()
        } else {
            pkg.join(sub)
        };
        self.probe(&path, kind)
            .map_err(|why| format!("cannot import \"{specifier}\": {why}"))?
            .ok_or_else(|| format!("cannot import \"{specifier}\": no such file in the package"))
    }

    fn package_target(&self, pkg: &Path, target: &str, specifier: &str) -> Result<PathBuf, String> {
        if !target.starts_with("./") {
            return Err(format!(
                "cannot import \"{specifier}\": the package maps it to \"{target}\", which is not inside the package"
            ));
        }
        let path = pkg.join(target);
        let Some(norm) = normalize(&path) else {
            return Err(format!(
                "cannot import \"{specifier}\": it climbs out of the package directory"
            ));
        };
        if !norm.starts_with(pkg) {
            return Err(format!(
                "cannot import \"{specifier}\": the package maps it outside itself"
            ));
        }
        self.is_file(&norm)
            .map_err(|why| format!("cannot import \"{specifier}\": {why}"))?
            .ok_or_else(|| format!("cannot import \"{specifier}\": the package maps it to {target}, which is missing"))
    }

    /// `#name` through the `imports` of the importer's package.
    fn resolve_imports(&self, specifier: &str, from_dir: &Path, kind: Kind) -> Target {
        let Some((pkg, manifest)) = self.package_scope(from_dir) else {
            return Target::Error(format!(
                "cannot import \"{specifier}\": no package.json declares it"
            ));
        };
        let Some(imports) = manifest.get("imports") else {
            return Target::Error(format!(
                "cannot import \"{specifier}\": the package has no \"imports\""
            ));
        };
        match subpath_target(imports, specifier, kind.conditions()) {
            Some(t) if t.starts_with("./") => match self.package_target(&pkg, &t, specifier) {
                Ok(p) => self.target_of(&p, specifier),
                Err(e) => Target::Error(e),
            },
            Some(t) => self.resolve_bare(&t, &pkg, kind),
            None => Target::Error(format!(
                "cannot import \"{specifier}\": the package's \"imports\" do not map it"
            )),
        }
    }

    /// A resolved file, through its package's `browser` map (`"./node.js": "./browser.js"` or `false`).
    fn target_of(&self, real: &Path, _specifier: &str) -> Target {
        let dir = real.parent().unwrap_or(&self.root);
        if let Some((pkg, m)) = self.package_scope(dir) {
            if let Some(map) = m.get("browser").and_then(Value::as_object) {
                if let Ok(rel) = real.strip_prefix(&pkg) {
                    let rel = format!("./{}", rel.to_string_lossy());
                    let bare = rel
                        .strip_suffix(".js")
                        .map(str::to_string)
                        .unwrap_or_else(|| rel.clone());
                    if let Some(v) = map.get(&rel).or_else(|| map.get(&bare)) {
                        return match v {
                            Value::Bool(false) => Target::Builtin(EMPTY.to_string()),
                            Value::String(s) => match self.probe_file_only(&pkg.join(s)) {
                                Ok(Some(p)) => Target::Module(self.id_of(&p)),
                                _ => Target::Module(self.id_of(real)),
                            },
                            _ => Target::Module(self.id_of(real)),
                        };
                    }
                }
            }
        }
        Target::Module(self.id_of(real))
    }

    /// A bare specifier the importer's package maps in its `browser` field (`"fs": false`).
    fn browser_alias(&self, specifier: &str, dir: &Path, kind: Kind) -> Option<Target> {
        let (pkg, m) = self.package_scope(dir)?;
        let v = m.get("browser")?.as_object()?.get(specifier)?;
        Some(match v {
            Value::Bool(false) => Target::Builtin(EMPTY.to_string()),
            Value::String(s) if s.starts_with("./") => match self.probe_file_only(&pkg.join(s)) {
                Ok(Some(p)) => Target::Module(self.id_of(&p)),
                _ => return None,
            },
            Value::String(s) => self.resolve_bare(s, &pkg, kind),
            _ => return None,
        })
    }

    /// Reads a package file (once) and resolves what it imports.
    fn file(&self, id: &str) -> Result<Arc<PackageFile>, String> {
        if let Some(f) = self.files.lock().expect("files").get(id) {
            return Ok(f.clone());
        }
        let path = self
            .path_of(id)
            .ok_or_else(|| format!("{id}: not a package file"))?;
        let real = self
            .is_file(&path)?
            .ok_or_else(|| format!("{}: no such file", display_name(id)))?;
        let len = std::fs::metadata(&real).map(|m| m.len()).unwrap_or(0);
        if len > MAX_FILE_BYTES {
            return Err(format!("{}: over {MAX_FILE_BYTES} bytes", display_name(id)));
        }
        let bytes = std::fs::read(&real).map_err(|e| format!("{}: {e}", display_name(id)))?;
        let source = String::from_utf8(bytes)
            .map_err(|_| format!("{}: not UTF-8 text", display_name(id)))?;
        let source = source
            .strip_prefix('\u{feff}')
            .map(str::to_string)
            .unwrap_or(source);
        let dir = real.parent().unwrap_or(&self.root).to_path_buf();
        let scanned = scan(&source);
        let format = self.format_of(&real, &scanned);
        let kind = if format == Format::Cjs {
            Kind::Require
        } else {
            Kind::Import
        };
        let links = if format == Format::Json {
            Vec::new()
        } else {
            scanned
                .specifiers
                .iter()
                .map(|s| (s.clone(), self.resolve_from_package(s, &dir, kind)))
                .collect()
        };
        let mut exports = Vec::new();
        if format == Format::Cjs {
            exports = scanned.exports.clone();
            let mut seen = HashSet::new();
            self.reexports(&scanned, &dir, &mut exports, &mut seen, 0);
        }
        let file = Arc::new(PackageFile {
            file: ModuleFile {
                id: id.to_string(),
                format,
                hash: hash(&source),
                source,
                exports,
                cached: false,
            },
            links,
        });
        self.files
            .lock()
            .expect("files")
            .insert(id.to_string(), file.clone());
        Ok(file)
    }

    /// Names a CommonJS module re-exports from others (`__exportStar(require("./x"))`), a few levels deep.
    fn reexports(
        &self,
        scanned: &Scan,
        dir: &Path,
        out: &mut Vec<String>,
        seen: &mut HashSet<String>,
        depth: u32,
    ) {
        if depth > 8 {
            return;
        }
        for r in &scanned.reexports {
            let Target::Module(id) = self.resolve_from_package(r, dir, Kind::Require) else {
                continue;
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(path) = self.path_of(&id) else {
                continue;
            };
            let Ok(Some(real)) = self.is_file(&path) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(&real) else {
                continue;
            };
            let s = scan(&text);
            for name in &s.exports {
                if name != "default" && !out.contains(name) {
                    out.push(name.clone());
                }
            }
            let sub_dir = real.parent().unwrap_or(&self.root).to_path_buf();
            self.reexports(&s, &sub_dir, out, seen, depth + 1);
        }
    }

    fn format_of(&self, real: &Path, scanned: &Scan) -> Format {
        match real.extension().and_then(|e| e.to_str()) {
            Some("mjs") => return Format::Esm,
            Some("cjs") => return Format::Cjs,
            Some("json") => return Format::Json,
            _ => {}
        }
        let dir = real.parent().unwrap_or(&self.root);
        match self
            .package_scope(dir)
            .and_then(|(_, m)| m.get("type").and_then(Value::as_str).map(str::to_string))
            .as_deref()
        {
            Some("module") => Format::Esm,
            Some("commonjs") => Format::Cjs,
            // No "type": Node's syntax detection.
            _ if scanned.has_module_syntax => Format::Esm,
            _ => Format::Cjs,
        }
    }

    fn resolve_from_package(&self, specifier: &str, dir: &Path, kind: Kind) -> Target {
        if let Some(name) = builtins::name(specifier) {
            if let Some(t) = self.browser_alias(specifier, dir, kind) {
                return t;
            }
            return Target::Builtin(name.to_string());
        }
        if specifier.starts_with("./")
            || specifier.starts_with("../")
            || specifier == "."
            || specifier == ".."
        {
            let path = dir.join(specifier);
            return match self.probe(&path, kind) {
                Ok(Some(real)) => self.target_of(&real, specifier),
                Ok(None) => Target::Error(format!("cannot import \"{specifier}\": no such file")),
                Err(why) => Target::Error(format!("cannot import \"{specifier}\": {why}")),
            };
        }
        if specifier.starts_with('/') {
            return Target::Error(format!(
                "cannot import \"{specifier}\": absolute paths are refused"
            ));
        }
        if specifier.starts_with('#') {
            return self.resolve_imports(specifier, dir, kind);
        }
        if let Some(scheme) = url_like(specifier) {
            return refuse_url(specifier, scheme);
        }
        if let Some(t) = self.browser_alias(specifier, dir, kind) {
            return t;
        }
        self.resolve_bare(specifier, dir, kind)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Import,
    Require,
}

impl Kind {
    fn conditions(self) -> &'static [&'static str] {
        match self {
            Kind::Import => IMPORT_CONDITIONS,
            Kind::Require => REQUIRE_CONDITIONS,
        }
    }
}

/// `exports` for `subpath` (`.` or `./x`), with Node's subpath, pattern and condition rules.
fn exports_target(exports: &Value, subpath: &str, conds: &[&str]) -> Option<String> {
    let is_map = exports
        .as_object()
        .is_some_and(|o| o.keys().next().is_some_and(|k| k.starts_with('.')));
    if !is_map {
        return if subpath == "." {
            condition_target(exports, None, conds)
        } else {
            None
        };
    }
    subpath_target(exports, subpath, conds)
}

/// A subpath map (`exports` or `imports`): an exact key, else the longest matching `*` pattern.
fn subpath_target(map: &Value, key: &str, conds: &[&str]) -> Option<String> {
    let obj = map.as_object()?;
    if let Some(v) = obj.get(key) {
        if !key.contains('*') {
            return condition_target(v, None, conds);
        }
    }
    let mut best: Option<(&str, &Value, String)> = None;
    for (k, v) in obj {
        let Some(star) = k.find('*') else { continue };
        let (prefix, suffix) = (&k[..star], &k[star + 1..]);
        if key.len() >= prefix.len() + suffix.len()
            && key.starts_with(prefix)
            && key.ends_with(suffix)
            && best
                .as_ref()
                .is_none_or(|(bk, _, _)| prefix.len() > bk.find('*').unwrap_or(0))
        {
            let matched = key[prefix.len()..key.len() - suffix.len()].to_string();
            best = Some((k, v, matched));
        }
    }
    let (_, v, matched) = best?;
    condition_target(v, Some(&matched), conds)
}

fn condition_target(v: &Value, pattern: Option<&str>, conds: &[&str]) -> Option<String> {
    match v {
        Value::String(s) => Some(match pattern {
            Some(m) => s.replace('*', m),
            None => s.clone(),
        }),
        Value::Object(o) => {
            for (k, v) in o {
                if conds.contains(&k.as_str()) {
                    if let Some(t) = condition_target(v, pattern, conds) {
                        return Some(t);
                    }
                }
            }
            None
        }
        Value::Array(a) => a.iter().find_map(|v| condition_target(v, pattern, conds)),
        _ => None,
    }
}

/// The name a step module is known by: `./lib.js` and `lib.js` are `lib.js`.
pub fn step_module_name(name: &str) -> Result<String, String> {
    let trimmed = name.strip_prefix("./").unwrap_or(name);
    let bad = trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed.contains('\\')
        || trimmed.contains('%')
        || trimmed.contains('?')
        || trimmed.contains('#')
        || trimmed
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        || trimmed.starts_with("node_modules/");
    if bad {
        return Err(format!(
            "module name \"{name}\": use a relative path such as ./lib.js, without .. and not under node_modules/"
        ));
    }
    Ok(trimmed.to_string())
}

/// A step's own modules, by name (`step.js`, `lib/util.js`).
#[derive(Clone, Debug, Default)]
pub struct StepModules {
    pub main: String,
    pub others: Vec<(String, String)>,
}

/// Gathers a step's module set: its own modules, and every package file and built-in they import, as
/// far as the scanner sees. Resolution failures are kept as `Target::Error`, reported only if the
/// module is really imported.
pub fn prepare(
    main_name: &str,
    main_code: &str,
    others: &[(String, String)],
    packages: Option<&PackageDir>,
) -> ModuleSet {
    prepare_omitting(main_name, main_code, others, packages, &HashSet::new())
}

/// `prepare`, leaving out of the set the package files in `omit` (those a worker's startup snapshot
/// holds already, `preload`); their links are kept, and what they import is still gathered.
pub fn prepare_omitting(
    main_name: &str,
    main_code: &str,
    others: &[(String, String)],
    packages: Option<&PackageDir>,
    omit: &HashSet<String>,
) -> ModuleSet {
    let main_id = format!("file:///{main_name}");
    let step_ids: HashMap<String, &str> = others
        .iter()
        .map(|(name, src)| (format!("file:///{name}"), src.as_str()))
        .collect();
    let mut set = ModuleSet {
        main: main_id.clone(),
        ..Default::default()
    };
    let mut queue: VecDeque<String> = VecDeque::new();
    let mut seen: HashSet<String> = HashSet::new();
    seen.insert(main_id.clone());
    queue.push_back(main_id.clone());
    let mut names: Vec<&str> = vec![main_name];
    names.extend(others.iter().map(|(n, _)| n.as_str()));
    while let Some(id) = queue.pop_front() {
        if seen.len() > MAX_MODULES {
            break;
        }
        let links: Vec<(String, Target)> = if id == main_id || step_ids.contains_key(&id) {
            let source = if id == main_id {
                main_code
            } else {
                step_ids[&id]
            };
            if id != main_id {
                set.files.push(ModuleFile {
                    id: id.clone(),
                    format: Format::Esm,
                    source: source.to_string(),
                    hash: 0,
                    exports: Vec::new(),
                    cached: false,
                });
            }
            scan(source)
                .specifiers
                .iter()
                .map(|s| {
                    (
                        s.clone(),
                        resolve_from_step(s, &id, &step_ids, &main_id, &names, packages),
                    )
                })
                .collect()
        } else {
            let Some(pkgs) = packages else { continue };
            match pkgs.file(&id) {
                Ok(f) => {
                    if !omit.contains(&id) {
                        set.files.push(f.file.clone());
                    }
                    f.links.clone()
                }
                Err(e) => {
                    // Whoever imports it sees this.
                    for (_, _, t) in set.links.iter_mut() {
                        if *t == Target::Module(id.clone()) {
                            *t = Target::Error(format!("cannot load {}: {e}", display_name(&id)));
                        }
                    }
                    continue;
                }
            }
        };
        for (spec, target) in links {
            if let Target::Module(t) = &target {
                if seen.insert(t.clone()) {
                    queue.push_back(t.clone());
                }
            }
            set.links.push((id.clone(), spec, target));
        }
    }
    set
}

fn resolve_from_step(
    specifier: &str,
    referrer: &str,
    step_ids: &HashMap<String, &str>,
    main_id: &str,
    names: &[&str],
    packages: Option<&PackageDir>,
) -> Target {
    if let Some(name) = builtins::name(specifier) {
        return match builtins::refused(name) {
            Some(_) => Target::Error(builtins::refusal(name)),
            None => Target::Builtin(name.to_string()),
        };
    }
    if specifier.starts_with("./") || specifier.starts_with("../") {
        let base = url::Url::parse(referrer).expect("step module ids are URLs");
        let Ok(joined) = base.join(specifier) else {
            return Target::Error(format!("cannot import \"{specifier}\": not a valid path"));
        };
        let id = joined.as_str().to_string();
        if id.starts_with(PACKAGE_PREFIX) {
            return Target::Error(format!(
                "cannot import \"{specifier}\": import packages by name, not by path"
            ));
        }
        for candidate in [id.clone(), format!("{id}.js"), format!("{id}.mjs")] {
            if candidate == main_id || step_ids.contains_key(&candidate) {
                return Target::Module(candidate);
            }
        }
        return Target::Error(format!(
            "cannot import \"{specifier}\" from {}: the step has no module {} (it has {})",
            display_name(referrer),
            display_name(&id),
            names.join(", ")
        ));
    }
    if specifier.starts_with('/') {
        return Target::Error(format!(
            "cannot import \"{specifier}\": absolute paths are refused; use ./ for the step's own modules"
        ));
    }
    if let Some(scheme) = url_like(specifier) {
        return refuse_url(specifier, scheme);
    }
    if specifier.starts_with('#') {
        return Target::Error(format!(
            "cannot import \"{specifier}\": a step has no \"imports\" map"
        ));
    }
    match packages {
        Some(p) => p.resolve_bare(specifier, &p.root, Kind::Import),
        None => match split_package(specifier) {
            Some((name, _)) => Target::Error(format!(
                "cannot import \"{specifier}\": the package \"{name}\" is not available, because this codestep has no package directory (--packages)"
            )),
            None => Target::Error(format!("cannot import \"{specifier}\": not a package name")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const C: &[&str] = IMPORT_CONDITIONS;

    #[test]
    fn exports_follow_node_rules() {
        let e = json!({
            ".": { "types": "./x.d.ts", "worker": { "import": "./w.mjs", "require": "./w.cjs" }, "default": "./n.js" },
            "./sub/*": { "import": "./dist/*.mjs" },
            "./sub/special": "./special.js",
            "./hidden": null,
        });
        assert_eq!(exports_target(&e, ".", C).as_deref(), Some("./w.mjs"));
        assert_eq!(
            exports_target(&e, ".", REQUIRE_CONDITIONS).as_deref(),
            Some("./w.cjs")
        );
        assert_eq!(
            exports_target(&e, "./sub/a/b", C).as_deref(),
            Some("./dist/a/b.mjs")
        );
        assert_eq!(
            exports_target(&e, "./sub/special", C).as_deref(),
            Some("./special.js")
        );
        assert_eq!(exports_target(&e, "./hidden", C), None);
        assert_eq!(exports_target(&e, "./other", C), None);
        assert_eq!(
            exports_target(&json!("./main.js"), ".", C).as_deref(),
            Some("./main.js")
        );
        assert_eq!(
            exports_target(&json!({"node": "./n.js", "default": "./d.js"}), ".", C).as_deref(),
            Some("./d.js")
        );
    }

    #[test]
    fn package_names_split() {
        assert_eq!(split_package("stripe"), Some(("stripe", ".".into())));
        assert_eq!(
            split_package("@octokit/rest"),
            Some(("@octokit/rest", ".".into()))
        );
        assert_eq!(split_package("@a/b/c/d"), Some(("@a/b", "./c/d".into())));
        assert_eq!(split_package("a/b"), Some(("a", "./b".into())));
        assert_eq!(split_package("@a"), None);
        assert_eq!(split_package("..%2f"), None);
    }

    #[test]
    fn step_module_names_are_relative_and_stay_inside() {
        assert_eq!(step_module_name("./lib.js").unwrap(), "lib.js");
        assert_eq!(step_module_name("lib/util.js").unwrap(), "lib/util.js");
        for bad in [
            "../x.js",
            "/etc/passwd",
            "a/../../b.js",
            "node_modules/x/index.js",
            "%2e%2e/x.js",
            "",
        ] {
            assert!(step_module_name(bad).is_err(), "{bad}");
        }
    }
}
