//! Connectors: the model, its validation, URL patterns and presets.

mod file;
mod model;
pub mod pattern;
mod presets;
mod secret;
mod validate;

pub use file::{load_connectors_file, ConnectorFileError};
pub use model::{Connector, ConnectorSpec, Placement};
pub use pattern::{PatternError, UrlPattern};
pub use presets::{preset, preset_names};
pub use secret::Secret;
pub use validate::{ValidationError, MAX_NAME_LEN, MAX_PATTERNS, SECRET_PLACEHOLDER};
