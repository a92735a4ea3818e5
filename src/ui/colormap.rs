//! Colours that encode data in the latent cloud. The continuous maps come from the `colorcet`
//! crate (Peter Kovesi's CET maps, as the colorcet project publishes them), from the maps Kovesi
//! designed for protanopic and deuteranopic viewers, which stay perceptually uniform for them
//! and for everyone else: CET-CBC1 (cyclic: black, blue, white, yellow) for the time of day,
//! turned so that midnight is black and noon white, and CET-CBL1 (sequential: black, blue,
//! yellow, white) for anomaly scores. Categories (labels, the train / validation / test split)
//! take Okabe-Ito colours.
//!
//! Both maps run from near black to near white, so the cloud is drawn on a neutral grey
//! [`BACKDROP`] in both themes, where both ends show.

use super::palette;
use egui::Color32;
use std::sync::OnceLock;

/// The cloud's backdrop: a neutral grey between the maps' darkest and lightest colours.
pub const BACKDROP: Color32 = Color32::from_gray(96);

/// A window whose points are all normal (label colouring).
pub const NORMAL: Color32 = palette::SKY_BLUE;
/// A window holding a labelled anomaly before its last point.
pub const ANOMALY_IN_WINDOW: Color32 = palette::YELLOW;
/// A window whose last point is labelled anomalous.
pub const ANOMALOUS_LAST_POINT: Color32 = palette::VERMILLION;
/// The training part.
pub const TRAIN: Color32 = palette::BLUE;
/// The validation part.
pub const VALIDATION: Color32 = palette::ORANGE;
/// The test part.
pub const TEST: Color32 = palette::BLUISH_GREEN;

/// The colorcet name of the time-of-day map (CET-CBC1: blue, white, yellow, black).
const TIME_OF_DAY_MAP: &str = "cet_cbc1";
/// Where midnight sits on the time-of-day map: at its black, three quarters round.
const MIDNIGHT_ON_MAP: f32 = 0.75;
/// The colorcet name of the score map (CET-CBL1: black, blue, yellow, white).
const SCORE_MAP: &str = "cet_cbl1";

/// A colour map sampled into a lookup table.
struct Lut(Vec<Color32>);

impl Lut {
    /// The named colorcet map, or a grey ramp if this build's colorcet lacks it (a test checks
    /// that it does not).
    fn load(name: &str) -> Self {
        let colors: Vec<Color32> = match name.parse::<colorcet::ColorMap>() {
            // Floats in [0, 1] (colorcet 0.2's `get_rgb_int` divides where it should multiply).
            Ok(map) => map
                .get_rgb_float::<f32>()
                .into_iter()
                .map(|rgb| {
                    let [r, g, b] = rgb.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8);
                    Color32::from_rgb(r, g, b)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        if colors.is_empty() {
            return Lut((0..=255).map(Color32::from_gray).collect());
        }
        Lut(colors)
    }

    /// The colour at `t` in [0, 1] (clamped), nearest entry.
    fn at(&self, t: f32) -> Color32 {
        let last = self.0.len() - 1;
        let i = (t.clamp(0.0, 1.0) * last as f32).round() as usize;
        self.0[i.min(last)]
    }
}

fn time_of_day_lut() -> &'static Lut {
    static LUT: OnceLock<Lut> = OnceLock::new();
    LUT.get_or_init(|| Lut::load(TIME_OF_DAY_MAP))
}

fn score_lut() -> &'static Lut {
    static LUT: OnceLock<Lut> = OnceLock::new();
    LUT.get_or_init(|| Lut::load(SCORE_MAP))
}

/// The colour of a time of day given as a fraction of the day (0 = midnight; wraps).
pub fn time_of_day(fraction_of_day: f32) -> Color32 {
    time_of_day_lut().at((fraction_of_day + MIDNIGHT_ON_MAP).rem_euclid(1.0))
}

/// The colour of an anomaly score given as its rank among the scores shown (0 = most normal,
/// 1 = most anomalous).
pub fn score(rank: f32) -> Color32 {
    score_lut().at(rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative luminance (0..1) of an sRGB colour.
    fn luminance(c: Color32) -> f32 {
        let lin = |v: u8| {
            let v = v as f32 / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(c.r()) + 0.7152 * lin(c.g()) + 0.0722 * lin(c.b())
    }

    #[test]
    fn both_maps_come_from_colorcet() {
        for name in [TIME_OF_DAY_MAP, SCORE_MAP] {
            let map: colorcet::ColorMap = name.parse().expect(name);
            assert!(map.get_rgb_float::<f32>().len() >= 256, "{name}");
        }
    }

    #[test]
    fn time_of_day_wraps_and_is_darkest_at_midnight_lightest_at_noon() {
        assert_eq!(time_of_day(0.0), time_of_day(1.0));
        assert_eq!(time_of_day(0.25), time_of_day(1.25));
        let hours: Vec<f32> = (0..24)
            .map(|h| luminance(time_of_day(h as f32 / 24.0)))
            .collect();
        let darkest = hours.iter().copied().fold(f32::MAX, f32::min);
        let lightest = hours.iter().copied().fold(f32::MIN, f32::max);
        assert_eq!(hours[0], darkest, "{hours:?}");
        assert_eq!(hours[12], lightest, "{hours:?}");
        // Morning and evening share a lightness but not a colour.
        assert_ne!(time_of_day(0.25), time_of_day(0.75));
    }

    #[test]
    fn the_score_map_grows_lighter_with_the_score() {
        let l: Vec<f32> = (0..=10)
            .map(|i| luminance(score(i as f32 / 10.0)))
            .collect();
        assert!(l.windows(2).all(|w| w[1] > w[0]), "{l:?}");
        assert_eq!(score(-1.0), score(0.0));
        assert_eq!(score(2.0), score(1.0));
    }
}
