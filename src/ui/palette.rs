//! The Okabe-Ito palette: eight colours told apart with any colour vision. Every panel takes
//! its colours from here.

use egui::Color32;

/// Orange.
pub const ORANGE: Color32 = Color32::from_rgb(230, 159, 0);
/// Sky blue.
pub const SKY_BLUE: Color32 = Color32::from_rgb(86, 180, 233);
/// Bluish green.
pub const BLUISH_GREEN: Color32 = Color32::from_rgb(0, 158, 115);
/// Yellow.
pub const YELLOW: Color32 = Color32::from_rgb(240, 228, 66);
/// Blue.
pub const BLUE: Color32 = Color32::from_rgb(0, 114, 178);
/// Vermillion.
pub const VERMILLION: Color32 = Color32::from_rgb(213, 94, 0);
/// Reddish purple.
pub const REDDISH_PURPLE: Color32 = Color32::from_rgb(204, 121, 167);
