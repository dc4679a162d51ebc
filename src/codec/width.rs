//! Guessing from a sample whether bytes are fixed-width numbers, and of
//! which width, without compressing anything.
//!
//! zstd's savings on such data come mostly from entropy coding, so the
//! guess compares order-0 entropies: of all the sample's bytes together,
//! against the mean of its byte planes (the bytes at one position within
//! each element) for widths 2, 4 and 8. Float weights have a plane of
//! exponent bytes far more predictable than the rest; text, pickles and
//! already compressed data look the same in every plane. Repeats that
//! zstd would find as matches are not modelled, which is why the planes
//! must win by a clear margin.

/// Below this many bytes the estimates are too rough to act on.
pub const MIN_SAMPLE: usize = 16 << 10;

/// Bytes of a sample looked at; more changes nothing measurable.
pub const MAX_SAMPLE: usize = 64 << 10;

/// How many bits per byte the planes must save over the whole, about 3%
/// of the raw size, for shuffling to be worth its cost.
const MARGIN_BITS: f64 = 0.25;

/// How close another width must come to float32's for float32's to be
/// kept: its shuffle is the fast one, and on 2-byte data it does as well.
const PREFER_FLOAT32_BITS: f64 = 0.1;

/// The element width whose byte planes are clearly more predictable than
/// the bytes taken together, if any. `sample` starts on an element
/// boundary; at most [`MAX_SAMPLE`] of it is read.
pub fn likely_width(sample: &[u8]) -> Option<u8> {
    let sample = &sample[..sample.len().min(MAX_SAMPLE) / 8 * 8];
    if sample.len() < MIN_SAMPLE {
        return None;
    }
    let counts = counts_by_position(sample);
    let whole = mean_plane_entropy(&counts, 1);
    let scores = [2u8, 4, 8].map(|width| (width, mean_plane_entropy(&counts, width as usize)));
    let (best, best_bits) = scores
        .into_iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("three widths");
    if whole - best_bits < MARGIN_BITS {
        return None;
    }
    let float32_bits = scores[1].1;
    if float32_bits - best_bits <= PREFER_FLOAT32_BITS {
        return Some(4);
    }
    Some(best)
}

/// Byte counts for each position modulo 8; every width tried divides 8,
/// so its planes are sums of these.
fn counts_by_position(sample: &[u8]) -> [[u32; 256]; 8] {
    let mut counts = [[0u32; 256]; 8];
    for group in sample.chunks_exact(8) {
        for (position, byte) in group.iter().enumerate() {
            counts[position][*byte as usize] += 1;
        }
    }
    counts
}

/// The mean entropy, in bits per byte, of the planes of elements `width`
/// bytes wide.
fn mean_plane_entropy(counts: &[[u32; 256]; 8], width: usize) -> f64 {
    let total: f64 = (0..width)
        .map(|plane| {
            let mut merged = [0u32; 256];
            for position in (plane..8).step_by(width) {
                for (sum, count) in merged.iter_mut().zip(&counts[position]) {
                    *sum += count;
                }
            }
            entropy(&merged)
        })
        .sum();
    total / width as f64
}

/// Entropy in bits per symbol, with the Miller-Madow correction for the
/// bias of small samples (which would otherwise favour the smaller planes).
fn entropy(counts: &[u32; 256]) -> f64 {
    let n: f64 = counts.iter().map(|&c| c as f64).sum();
    if n == 0.0 {
        return 0.0;
    }
    let seen = counts.iter().filter(|&&c| c > 0).count() as f64;
    let plain: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    plain + (seen - 1.0) / (2.0 * n * std::f64::consts::LN_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of well-mixed bytes.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 56) as u8
            })
            .collect()
    }

    /// Floats of magnitude around 0.01 to 1, as trained weights are.
    fn floats<const N: usize>(count: usize, to_bytes: fn(f64) -> [u8; N]) -> Vec<u8> {
        let noise = noise(count * 2, 7);
        (0..count)
            .flat_map(|i| {
                let mantissa = u16::from_le_bytes([noise[2 * i], noise[2 * i + 1]]) as f64;
                let sign = if noise[2 * i] & 1 == 0 { 1.0 } else { -1.0 };
                to_bytes(sign * (0.01 + mantissa / 65536.0))
            })
            .collect()
    }

    #[test]
    fn float32_weights_shuffle_by_four() {
        let sample = floats(16 << 10, |x| (x as f32).to_le_bytes());
        assert_eq!(likely_width(&sample), Some(4));
    }

    #[test]
    fn float64_weights_shuffle_by_eight() {
        let sample = floats(8 << 10, f64::to_le_bytes);
        assert_eq!(likely_width(&sample), Some(8));
    }

    #[test]
    fn half_precision_weights_shuffle_by_a_width_that_separates_their_bytes() {
        // bfloat16: the upper half of a float32.
        let sample = floats(32 << 10, |x| {
            let bits = (x as f32).to_bits();
            ((bits >> 16) as u16).to_le_bytes()
        });
        assert!(matches!(likely_width(&sample), Some(2 | 4)));
    }

    #[test]
    fn text_random_bytes_and_small_samples_are_left_alone() {
        let text = "the quick brown fox jumps over the lazy dog; ".repeat(2000);
        assert_eq!(likely_width(text.as_bytes()), None);
        assert_eq!(likely_width(&noise(64 << 10, 3)), None);
        let floats = floats(1000, |x| (x as f32).to_le_bytes());
        assert_eq!(
            likely_width(&floats),
            None,
            "4,000 bytes is below the minimum"
        );
    }
}
