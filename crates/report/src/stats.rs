//! Descriptive statistics over repetitions: mean, standard deviation, a Student-t
//! confidence interval, min, max, coefficient of variation, and a median/MAD outlier rule.
//!
//! The Student-t quantile is computed here (no statistics crate): closed forms for one and
//! two degrees of freedom, otherwise a Cornish–Fisher start refined by Newton steps on the
//! exact CDF (regularised incomplete beta by its continued fraction).

use serde::Serialize;

/// The summary of one metric over the valid repetitions of a cell and stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); `None` for a single value.
    pub sd: Option<f64>,
    /// Lower and upper bound of the confidence interval of the mean; `None` for n < 2.
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Half-width of the interval: t(1 − α/2, n − 1) · sd / √n.
    pub ci_half: Option<f64>,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    /// sd / |mean|; `None` when undefined (n < 2 or a zero mean).
    pub cv: Option<f64>,
}

impl Stats {
    /// Summarises `values` with a two-sided `confidence` interval (e.g. 0.95). `None` when empty
    /// or when a value is not finite.
    pub fn of(values: &[f64], confidence: f64) -> Option<Stats> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let median = median(values);
        if n < 2 {
            return Some(Stats {
                n,
                mean,
                sd: None,
                ci_low: None,
                ci_high: None,
                ci_half: None,
                min,
                max,
                median,
                cv: None,
            });
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let sd = var.sqrt();
        let t = t_quantile(1.0 - (1.0 - confidence) / 2.0, (n - 1) as f64);
        let half = t * sd / (n as f64).sqrt();
        let cv = (mean != 0.0).then(|| sd / mean.abs());
        Some(Stats {
            n,
            mean,
            sd: Some(sd),
            ci_low: Some(mean - half),
            ci_high: Some(mean + half),
            ci_half: Some(half),
            min,
            max,
            median,
            cv,
        })
    }
}

/// The median (mean of the two middle values for an even count). `NaN` when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

/// The modified z-score threshold of Iglewicz and Hoaglin.
pub const OUTLIER_SCORE: f64 = 3.5;

/// The fewest repetitions the outlier rule judges. With three values the MAD is the smaller
/// of the two deviations from the median, so two values that happen to lie close together
/// make any ordinary spread of the third score far beyond 3.5 (a clean 3-run matrix had 32
/// "outliers"); with four, the MAD is half the middle gap. From five on the MAD rests on
/// at least two deviations that are not the median's own, which is what the rule needs.
pub const OUTLIER_MIN_N: usize = 5;

/// Outliers by the median/MAD rule: the modified z-score `0.6745 · (x − median) / MAD`
/// beyond ±3.5. When the MAD is zero (more than half of the values equal), the mean
/// absolute deviation scaled by 1.2533 stands in for it; when that is zero too, nothing
/// is an outlier. Below [`OUTLIER_MIN_N`] values nothing is flagged. Returns
/// `(index, score)` of each outlier.
pub fn mad_outliers(values: &[f64]) -> Vec<(usize, f64)> {
    if values.len() < OUTLIER_MIN_N || values.iter().any(|v| !v.is_finite()) {
        return Vec::new();
    }
    let med = median(values);
    let dev: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = median(&dev);
    // Deviations below this are floating-point noise, not a different measurement.
    let noise = 1e-9 * med.abs().max(f64::MIN_POSITIVE);
    let scale = if mad > noise {
        mad / 0.6745
    } else {
        let mean_ad = dev.iter().sum::<f64>() / dev.len() as f64;
        if mean_ad <= noise {
            return Vec::new();
        }
        1.253_314 * mean_ad
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (i, (v - med) / scale))
        .filter(|(_, score)| score.abs() > OUTLIER_SCORE)
        .collect()
}

/// The quantile function of Student's t distribution: the `t` with `P(T ≤ t) = p` for
/// `df` degrees of freedom (`0 < p < 1`, `df > 0`).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0 && df > 0.0, "t_quantile needs 0 < p < 1 and df > 0 (got p={p}, df={df})");
    if p == 0.5 {
        return 0.0;
    }
    if df == 1.0 {
        return (std::f64::consts::PI * (p - 0.5)).tan();
    }
    if df == 2.0 {
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    // Cornish–Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5).
    let z = normal_quantile(p);
    let (z2, z3) = (z * z, z * z * z);
    let (z5, z7, z9) = (z3 * z2, z3 * z2 * z2, z3 * z3 * z3);
    let mut t = z
        + (z3 + z) / (4.0 * df)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * df * df)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * df.powi(3))
        + (79.0 * z9 + 776.0 * z7 + 1482.0 * z5 - 1920.0 * z3 - 945.0 * z) / (92160.0 * df.powi(4));
    // Newton steps on the exact CDF.
    for _ in 0..50 {
        let step = (t_cdf(t, df) - p) / t_pdf(t, df);
        t -= step;
        if step.abs() <= 1e-13 * t.abs().max(1.0) {
            break;
        }
    }
    t
}

/// `P(T ≤ t)` for Student's t with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * incomplete_beta(0.5 * df, 0.5, x);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

fn t_pdf(t: f64, df: f64) -> f64 {
    let ln = ln_gamma((df + 1.0) / 2.0)
        - ln_gamma(df / 2.0)
        - 0.5 * (df * std::f64::consts::PI).ln()
        - (df + 1.0) / 2.0 * (1.0 + t * t / df).ln();
    ln.exp()
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularised incomplete beta function I_x(a, b).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0) { front * beta_cf(a, b, x) / a } else { 1.0 - front * beta_cf(b, a, 1.0 - x) / b }
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_quantiles_match_the_published_table() {
        // Two-sided 95 %: the values printed in every statistics table.
        for (df, want) in [(1.0, 12.706), (2.0, 4.303), (3.0, 3.182), (4.0, 2.776), (10.0, 2.228), (30.0, 2.042)] {
            let t = t_quantile(0.975, df);
            assert!(close(t, want, 0.0005), "t(0.975, {df}) = {t}, want {want}");
        }
        // More digits (R: qt(0.975, df)).
        assert!(close(t_quantile(0.975, 4.0), 2.776_445_105_197_8, 1e-9));
        assert!(close(t_quantile(0.975, 10.0), 2.228_138_851_986_27, 1e-9));
        assert!(close(t_quantile(0.995, 5.0), 4.032_142_983_557_536, 1e-9));
        assert!(close(t_quantile(0.025, 7.0), -2.364_624_251_592_785, 1e-9));
        // Large df tends to the normal quantile.
        assert!(close(t_quantile(0.975, 1e6), 1.959_966, 1e-5));
    }

    #[test]
    fn cdf_and_quantile_are_inverse() {
        for df in [1.0, 2.0, 3.0, 5.5, 9.0, 40.0] {
            for p in [0.01, 0.1, 0.5, 0.8, 0.975, 0.999] {
                let t = t_quantile(p, df);
                assert!(close(t_cdf(t, df), p, 1e-10), "df {df} p {p}");
            }
        }
    }

    #[test]
    fn stats_by_hand() {
        // Values 2, 4, 6: mean 4, sd = sqrt(((−2)² + 0 + 2²) / 2) = 2,
        // CI = 4 ± t(0.975, 2) · 2 / √3 = 4 ± 4.302653 · 1.154701 = 4 ± 4.968275.
        let s = Stats::of(&[2.0, 4.0, 6.0], 0.95).unwrap();
        assert_eq!(s.n, 3);
        assert!(close(s.mean, 4.0, 1e-12));
        assert!(close(s.sd.unwrap(), 2.0, 1e-12));
        assert!(close(s.ci_half.unwrap(), 4.968_275, 1e-6));
        assert!(close(s.ci_low.unwrap(), -0.968_275, 1e-6));
        assert!(close(s.ci_high.unwrap(), 8.968_275, 1e-6));
        assert_eq!((s.min, s.max, s.median), (2.0, 6.0, 4.0));
        assert!(close(s.cv.unwrap(), 0.5, 1e-12));
        // One value: no spread, no interval.
        let one = Stats::of(&[7.5], 0.95).unwrap();
        assert_eq!((one.mean, one.sd, one.ci_half, one.cv), (7.5, None, None, None));
        assert!(Stats::of(&[], 0.95).is_none());
        assert!(Stats::of(&[1.0, f64::NAN], 0.95).is_none());
    }

    #[test]
    fn mad_rule_flags_only_far_values() {
        // median 10.1, deviations 0.1 0.2 0.1 0 39.9 → MAD 0.1; score of 50 = 0.6745 · 39.9 / 0.1 ≫ 3.5.
        let v = [10.2, 9.9, 10.0, 10.1, 50.0];
        let out = mad_outliers(&v);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 4);
        assert!(close(out[0].1, 0.6745 * 39.9 / 0.1, 1e-6), "{out:?}");
        assert!(mad_outliers(&[1.0, 1.1, 0.9, 1.05]).is_empty());
        assert!(mad_outliers(&[1.0, 100.0]).is_empty(), "two values cannot tell which one is off");
        assert!(mad_outliers(&[3.0, 3.0, 3.0]).is_empty());
        // Ordinary noise of three or four runs is never flagged (it scored 33 and 3.9 before).
        assert!(mad_outliers(&[10.0, 10.01, 10.5]).is_empty());
        assert!(mad_outliers(&[10.0, 10.01, 10.02, 10.2]).is_empty());
        // One genuine outlier among enough runs is.
        let out = mad_outliers(&[100.0, 101.0, 99.5, 100.4, 100.8, 99.9, 180.0]);
        assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), vec![6]);
        // MAD zero (most values equal): the mean absolute deviation stands in.
        let out = mad_outliers(&[5.0, 5.0, 5.0, 5.0, 5.0, 9.0]);
        assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
