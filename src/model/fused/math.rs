//! `exp` and `ln` for f32 as plain arithmetic (Cephes' `expf` / `logf` range reductions and
//! polynomials), so that loops calling them vectorise: the standard library's versions are calls
//! into libm, one element at a time, which cost a third of the fused step's element-wise time.
//! Accuracy: within 2 ulp of the correctly rounded result on their domains (tests below).
//! The polynomial coefficients are Cephes' as published, some with more digits than an f32 holds.
#![allow(clippy::excessive_precision)]

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in two (Cephes' C1 + C2) so that `n ln 2` is exact in the first part.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds an f32 of magnitude below 2^22 to an integer, held in the
/// low mantissa bits.
const ROUNDER: f32 = 12_582_912.0;

/// `e^x`. Inputs below -87.3 give about 1.2e-38 instead of a subnormal or 0; above 88.3, `inf`
/// (clamped to 2^128); NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.33, 88.38);
    // n = round(x / ln 2), as a float and as an integer.
    let shifted = x * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let n_int = shifted.to_bits() as i32 - ROUNDER.to_bits() as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let p = p * r2 + r + 1.0;
    // 2^n, built in the exponent field; n is in [-126, 127] after the clamp.
    p * f32::from_bits(((n_int + 127) as u32) << 23)
}

/// `ln x` for positive, finite `x` (subnormals excepted); NaN for any other input (where the
/// true result would be NaN, an infinity or a subnormal's logarithm).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    // The mantissa as a number in [1, 2), then in [sqrt(1/2), sqrt(2)).
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    let m = if big { 0.5 * m } else { m };
    let e = (exponent + i32::from(big)) as f32;
    let f = m - 1.0;
    let z = f * f;
    let mut y = (((((((7.037_683_6e-2 * f - 1.151_461e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333_1e-1;
    y *= f * z;
    y += e * LN2_LO;
    y -= 0.5 * z;
    let result = f + y + e * LN2_HI;
    if (f32::MIN_POSITIVE..f32::INFINITY).contains(&x) {
        result
    } else {
        f32::NAN
    }
}

/// `ln(1 + x)` for `x` in `[0, 1]`, accurate for tiny `x` too (Goldberg's correction: the
/// rounding of `1 + x` is divided out).
#[inline(always)]
pub fn ln_1p_unit(x: f32) -> f32 {
    let u = 1.0 + x;
    let d = u - 1.0;
    if d == 0.0 { x } else { ln(u) * (x / d) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_std_and_saturates_like_it_at_the_ends() {
        let mut worst = 0;
        for i in 0..=2_000_000 {
            let x = -87.0 + 175.0 * i as f32 / 2_000_000.0;
            worst = worst.max(ulps(exp(x), (x as f64).exp() as f32));
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(100.0).is_infinite());
        assert!(exp(-100.0) < 2e-38 && exp(-100.0) >= 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn ln_is_within_two_ulp_of_std_over_the_normal_range() {
        let mut worst = 0;
        let mut x = f32::MIN_POSITIVE;
        while x < 1e38 {
            for step in 0..64 {
                let v = x * (1.0 + step as f32 / 64.0);
                worst = worst.max(ulps(ln(v), (v as f64).ln() as f32));
            }
            x *= 1.37;
        }
        for i in 1..=1_000_000 {
            let v = 0.5 + i as f32 / 1_000_000.0; // around 1, where the result is small
            assert!(
                (ln(v) - (v as f64).ln() as f32).abs()
                    <= 1.2e-7 * (v as f64).ln().abs() as f32 + 1e-12,
                "ln({v})"
            );
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert_eq!(ln(1.0), 0.0);
        for bad in [0.0, -1.0, f32::INFINITY, f32::NAN, 1e-40] {
            assert!(ln(bad).is_nan(), "ln({bad})");
        }
    }

    #[test]
    fn ln_1p_unit_keeps_relative_accuracy_for_tiny_arguments() {
        for i in 0..=100_000 {
            let x = (i as f32 / 100_000.0).powi(3) + if i == 0 { 1e-30 } else { 0.0 };
            let exact = (x as f64).ln_1p();
            let ours = ln_1p_unit(x) as f64;
            assert!(
                (ours - exact).abs() <= 3e-7 * exact,
                "ln_1p({x}): {ours} vs {exact}"
            );
        }
    }
}
