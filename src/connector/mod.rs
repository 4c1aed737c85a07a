//! Connectors: the model, its validation, URL patterns and presets.

mod file;
mod model;
pub mod pattern;
mod presets;
mod secret;
mod template;
mod validate;

pub use file::{load_connectors_file, ConnectorFileError};
pub use model::{
    Connector, ConnectorSpec, HeaderTemplate, Placement, PlacementJson, PlacementKind,
    PATH_PLACEHOLDER,
};
pub use pattern::{PatternError, UrlPattern};
pub use presets::{preset, preset_info, preset_names, presets, Preset, PresetParam, PresetSecret};
pub use secret::{Secret, Secrets, DEFAULT_SECRET_NAME, MAX_SECRETS};
pub use validate::{
    ValidationError, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MAX_NAME_LEN, MAX_PATTERNS,
    SECRET_PLACEHOLDER,
};
