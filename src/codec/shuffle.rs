//! Byte shuffling: the bytes of fixed-width elements regrouped by their
//! position within the element, so that byte 0 of every element comes
//! first, then byte 1 of every element, and so on. Bytes after the last
//! whole element stay where they are.
//!
//! Float32, the common width for model weights, has a path of its own that
//! transposes 16 elements at a time in SSE2 registers (every x86-64 CPU
//! has them): the plain byte loop took about a fifth of the time to
//! encode a chunk.

/// The shuffled copy of `raw`.
pub fn shuffle(raw: &[u8], width: usize) -> Vec<u8> {
    regroup(raw, width, shuffle_float32, shuffle_any)
}

/// The inverse of [`shuffle`].
pub fn unshuffle(shuffled: &[u8], width: usize) -> Vec<u8> {
    regroup(shuffled, width, unshuffle_float32, unshuffle_any)
}

/// Runs one direction over the whole elements of `input`, by the float32
/// path or the generic one, and copies the bytes past them as they are.
fn regroup(
    input: &[u8],
    width: usize,
    float32: fn(&[u8], &mut [u8]),
    any: fn(&[u8], &mut [u8], usize),
) -> Vec<u8> {
    let mut out = vec![0u8; input.len()];
    let whole = if width <= 1 {
        0
    } else {
        input.len() / width * width
    };
    match width {
        0 | 1 => {}
        4 => float32(&input[..whole], &mut out[..whole]),
        _ => any(&input[..whole], &mut out[..whole], width),
    }
    out[whole..].copy_from_slice(&input[whole..]);
    out
}

/// Elements handled per pass of the generic loops: each pass writes one
/// short run into every plane, which keeps the writes within the cache.
const BLOCK: usize = 256;

fn shuffle_any(raw: &[u8], out: &mut [u8], width: usize) {
    let count = raw.len() / width;
    let mut planes: Vec<&mut [u8]> = out.chunks_exact_mut(count.max(1)).collect();
    for (block, elements) in raw.chunks(BLOCK * width).enumerate() {
        let start = block * BLOCK;
        let len = elements.len() / width;
        for (position, plane) in planes.iter_mut().enumerate() {
            let run = &mut plane[start..start + len];
            for (byte, element) in run.iter_mut().zip(elements.chunks_exact(width)) {
                *byte = element[position];
            }
        }
    }
}

fn unshuffle_any(shuffled: &[u8], out: &mut [u8], width: usize) {
    let count = shuffled.len() / width;
    let planes: Vec<&[u8]> = shuffled.chunks_exact(count.max(1)).collect();
    for (block, elements) in out.chunks_mut(BLOCK * width).enumerate() {
        let start = block * BLOCK;
        let len = elements.len() / width;
        for (position, plane) in planes.iter().enumerate() {
            let run = &plane[start..start + len];
            for (byte, element) in run.iter().zip(elements.chunks_exact_mut(width)) {
                element[position] = *byte;
            }
        }
    }
}

/// Splits a float32 buffer into its four planes.
fn planes_mut(out: &mut [u8]) -> [&mut [u8]; 4] {
    let count = out.len() / 4;
    let (p0, rest) = out.split_at_mut(count);
    let (p1, rest) = rest.split_at_mut(count);
    let (p2, p3) = rest.split_at_mut(count);
    [p0, p1, p2, p3]
}

fn shuffle_float32(raw: &[u8], out: &mut [u8]) {
    let [p0, p1, p2, p3] = planes_mut(out);
    let done = simd::shuffle_float32(raw, [&mut *p0, &mut *p1, &mut *p2, &mut *p3]);
    for (index, element) in raw.chunks_exact(4).enumerate().skip(done) {
        p0[index] = element[0];
        p1[index] = element[1];
        p2[index] = element[2];
        p3[index] = element[3];
    }
}

fn unshuffle_float32(shuffled: &[u8], out: &mut [u8]) {
    let count = shuffled.len() / 4;
    let (p0, rest) = shuffled.split_at(count);
    let (p1, rest) = rest.split_at(count);
    let (p2, p3) = rest.split_at(count);
    let planes = p0.iter().zip(p1).zip(p2).zip(p3);
    for (element, (((b0, b1), b2), b3)) in out.chunks_exact_mut(4).zip(planes) {
        element.copy_from_slice(&[*b0, *b1, *b2, *b3]);
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_storeu_si128, _mm_unpackhi_epi64, _mm_unpackhi_epi8,
        _mm_unpacklo_epi64, _mm_unpacklo_epi8,
    };

    /// Shuffles whole groups of 16 float32 elements; answers how many
    /// elements it did, leaving the rest to the caller.
    pub fn shuffle_float32(raw: &[u8], mut planes: [&mut [u8]; 4]) -> usize {
        let groups = raw.len() / 64;
        for group in 0..groups {
            let input = &raw[group * 64..group * 64 + 64];
            let outputs = transpose(input);
            for (plane, bytes) in planes.iter_mut().zip(outputs) {
                plane[group * 16..group * 16 + 16].copy_from_slice(&bytes);
            }
        }
        groups * 16
    }

    /// Transposes 16 elements of 4 bytes into 4 runs of 16 bytes. Three
    /// rounds of byte interleaving bring equal positions next to each
    /// other; a last round joins the halves.
    fn transpose(input: &[u8]) -> [[u8; 16]; 4] {
        assert_eq!(input.len(), 64);
        // SAFETY: SSE2 is part of the x86-64 baseline, and every load and
        // store below is of 16 bytes within `input` or a local array.
        unsafe {
            let load = |at: usize| _mm_loadu_si128(input.as_ptr().add(at).cast::<__m128i>());
            let (r0, r1, r2, r3) = (load(0), load(16), load(32), load(48));

            let (t0, t1) = (_mm_unpacklo_epi8(r0, r1), _mm_unpackhi_epi8(r0, r1));
            let (t2, t3) = (_mm_unpacklo_epi8(r2, r3), _mm_unpackhi_epi8(r2, r3));

            let (u0, u1) = (_mm_unpacklo_epi8(t0, t1), _mm_unpackhi_epi8(t0, t1));
            let (u2, u3) = (_mm_unpacklo_epi8(t2, t3), _mm_unpackhi_epi8(t2, t3));

            let (v0, v1) = (_mm_unpacklo_epi8(u0, u1), _mm_unpackhi_epi8(u0, u1));
            let (v2, v3) = (_mm_unpacklo_epi8(u2, u3), _mm_unpackhi_epi8(u2, u3));

            let joined = [
                _mm_unpacklo_epi64(v0, v2),
                _mm_unpackhi_epi64(v0, v2),
                _mm_unpacklo_epi64(v1, v3),
                _mm_unpackhi_epi64(v1, v3),
            ];
            let mut out = [[0u8; 16]; 4];
            for (bytes, register) in out.iter_mut().zip(joined) {
                _mm_storeu_si128(bytes.as_mut_ptr().cast::<__m128i>(), register);
            }
            out
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    /// Elsewhere the caller's scalar loop does every element.
    pub fn shuffle_float32(_raw: &[u8], _planes: [&mut [u8]; 4]) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one byte at a time.
    fn reference(raw: &[u8], width: usize) -> Vec<u8> {
        let count = raw.len() / width;
        let mut out = raw.to_vec();
        for element in 0..count {
            for position in 0..width {
                out[position * count + element] = raw[element * width + position];
            }
        }
        out
    }

    #[test]
    fn every_width_and_length_matches_the_definition_and_round_trips() {
        let raw: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for width in 1..=9 {
            for len in [0, 1, 3, 4, 63, 64, 65, 127, 128, 130, 1000] {
                let input = &raw[..len];
                let shuffled = shuffle(input, width);
                assert_eq!(
                    shuffled,
                    reference(input, width),
                    "width {width}, {len} bytes"
                );
                assert_eq!(
                    unshuffle(&shuffled, width),
                    input,
                    "width {width}, {len} bytes"
                );
            }
        }
    }
}
