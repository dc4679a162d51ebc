//! The arithmetic of Aggregate: combining aligned spans of several inputs
//! element by element. Knows nothing of Redis or gRPC; the store feeds it
//! spans of equal length, one per input, in the inputs' order.
//!
//! Every operation accumulates in `f64`, whatever the element type, and
//! rounds to the element type once, at the end: float32 results are then
//! the correctly rounded float32 of the float64 computation. Inputs are
//! combined in their given order, with plain IEEE-754 operations (no fused
//! multiply-add, no reordering), so a reference computed the same way in
//! float64 matches bit for bit. NaN in any input gives NaN for every
//! operation, as numpy's `sum`, `mean`, `minimum` and `maximum` do.

use std::collections::HashMap;

use bytes::Bytes;

use crate::error::{Error, Result};

/// How the bytes of every input are read: little-endian IEEE-754 floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    Float32,
    Float64,
}

impl ElementType {
    /// The width of one element, in bytes.
    pub fn width(self) -> usize {
        match self {
            ElementType::Float32 => 4,
            ElementType::Float64 => 8,
        }
    }

    /// The numpy dtype of the result, as the clients write it.
    pub fn dtype(self) -> &'static str {
        match self {
            ElementType::Float32 => "<f4",
            ElementType::Float64 => "<f8",
        }
    }

    /// Whether an input's "modelsync.dtype" entry describes this type with
    /// little-endian (or native, which the clients write as "=") bytes.
    pub fn matches_dtype(self, dtype: &str) -> bool {
        let kind = dtype.trim_start_matches(['<', '=']);
        let letters = dtype.len() - kind.len();
        letters <= 1
            && match self {
                ElementType::Float32 => kind == "f4",
                ElementType::Float64 => kind == "f8",
            }
    }
}

/// What is computed at each element position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Sum,
    Mean,
    /// Weighted by one weight per input.
    WeightedMean,
    Min,
    Max,
}

/// An operation on inputs of one element type.
#[derive(Debug, Clone)]
pub struct Combination {
    pub element: ElementType,
    pub operation: Operation,
    /// One per input, in the inputs' order, for a weighted mean; empty
    /// otherwise.
    pub weights: Vec<f64>,
}

impl Combination {
    /// Checks the weights given by key and puts them in the inputs' order:
    /// a weighted mean needs a finite weight >= 0 for every key and a sum
    /// above 0; any other operation takes none.
    pub fn new(
        element: ElementType,
        operation: Operation,
        keys: &[String],
        weights: &HashMap<String, f64>,
    ) -> Result<Self> {
        let weights = if operation == Operation::WeightedMean {
            weights_in_order(keys, weights)?
        } else if !weights.is_empty() {
            return Err(Error::invalid(
                "weights are only taken by the weighted mean; leave them out for this operation",
            ));
        } else {
            Vec::new()
        };
        Ok(Combination {
            element,
            operation,
            weights,
        })
    }
}

fn weights_in_order(keys: &[String], weights: &HashMap<String, f64>) -> Result<Vec<f64>> {
    if let Some(stray) = weights.keys().find(|k| !keys.contains(k)) {
        return Err(Error::invalid(format!(
            "a weight is given for key {stray:?}, which is not among the inputs"
        )));
    }
    let mut ordered = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(&weight) = weights.get(key) else {
            return Err(Error::invalid(format!(
                "the weighted mean needs a weight for every input; key {key:?} has none"
            )));
        };
        if !weight.is_finite() || weight < 0.0 {
            return Err(Error::invalid(format!(
                "the weight of key {key:?} is {weight}; weights must be finite and >= 0"
            )));
        }
        ordered.push(weight);
    }
    if ordered.iter().sum::<f64>() <= 0.0 {
        return Err(Error::invalid(
            "the weights add up to 0; at least one input needs a weight above 0",
        ));
    }
    Ok(ordered)
}

impl Combination {
    /// Combines one span of every input (all of the same length, a whole
    /// number of elements) into the result's span, as little-endian bytes.
    pub fn apply(&self, spans: &[Bytes]) -> Bytes {
        let width = self.element.width();
        let count = spans.first().map_or(0, |s| s.len() / width);
        debug_assert!(spans.iter().all(|s| s.len() == count * width));

        let mut acc = vec![0f64; count];
        for (index, span) in spans.iter().enumerate() {
            self.fold(&mut acc, index, span);
        }

        self.finish(&mut acc, spans.len());
        self.encode(&acc)
    }

    /// Folds input `index` into the accumulator. The first input is
    /// assigned rather than added to zero, so that -0.0 survives a sum of
    /// one input, as it does in numpy.
    fn fold(&self, acc: &mut [f64], index: usize, span: &[u8]) {
        let first = index == 0;
        match (&self.operation, self.element) {
            (Operation::Sum | Operation::Mean, element) => {
                fold_with(acc, span, element, first, |a, x| a + x)
            }
            (Operation::WeightedMean, element) => {
                let w = self.weights[index];
                fold_with(acc, span, element, first, |a, x| a + w * x);
                if first {
                    acc.iter_mut().for_each(|a| *a *= w);
                }
            }
            (Operation::Min, element) => fold_with(acc, span, element, first, nan_min),
            (Operation::Max, element) => fold_with(acc, span, element, first, nan_max),
        }
    }

    /// Turns the accumulated values into the operation's result.
    fn finish(&self, acc: &mut [f64], inputs: usize) {
        let divisor = match &self.operation {
            Operation::Mean => inputs as f64,
            // Summed in the inputs' order, as the numerator was.
            Operation::WeightedMean => match self.weights.iter().copied().reduce(|a, w| a + w) {
                Some(total) => total,
                None => return,
            },
            _ => return,
        };
        // Division, not multiplication by the reciprocal, which could
        // differ in the last bit from `sum / n`.
        acc.iter_mut().for_each(|a| *a /= divisor);
    }

    fn encode(&self, acc: &[f64]) -> Bytes {
        let mut out = Vec::with_capacity(acc.len() * self.element.width());
        match self.element {
            ElementType::Float32 => acc
                .iter()
                .for_each(|&a| out.extend_from_slice(&(a as f32).to_le_bytes())),
            ElementType::Float64 => acc
                .iter()
                .for_each(|&a| out.extend_from_slice(&a.to_le_bytes())),
        }
        out.into()
    }
}

/// Applies `step(accumulated, element)` to every position; for the first
/// input the element itself is stored.
fn fold_with(
    acc: &mut [f64],
    span: &[u8],
    element: ElementType,
    first: bool,
    step: impl Fn(f64, f64) -> f64,
) {
    match element {
        ElementType::Float32 => {
            let values = span
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64);
            fold_values(acc, values, first, step)
        }
        ElementType::Float64 => {
            let values = span
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("eight bytes")));
            fold_values(acc, values, first, step)
        }
    }
}

fn fold_values(
    acc: &mut [f64],
    values: impl Iterator<Item = f64>,
    first: bool,
    step: impl Fn(f64, f64) -> f64,
) {
    if first {
        acc.iter_mut().zip(values).for_each(|(a, x)| *a = x);
    } else {
        acc.iter_mut()
            .zip(values)
            .for_each(|(a, x)| *a = step(*a, x));
    }
}

/// The smaller value, or NaN when either is NaN (unlike `f64::min`).
fn nan_min(a: f64, x: f64) -> f64 {
    if x.is_nan() || x < a {
        x
    } else {
        a
    }
}

/// The larger value, or NaN when either is NaN (unlike `f64::max`).
fn nan_max(a: f64, x: f64) -> f64 {
    if x.is_nan() || x > a {
        x
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(values: &[f32]) -> Bytes {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn f64s(values: &[f64]) -> Bytes {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn back_f32(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn back_f64(bytes: &[u8]) -> Vec<f64> {
        bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn combine(element: ElementType, operation: Operation, spans: &[Bytes]) -> Bytes {
        combine_weighted(element, operation, Vec::new(), spans)
    }

    fn combine_weighted(
        element: ElementType,
        operation: Operation,
        weights: Vec<f64>,
        spans: &[Bytes],
    ) -> Bytes {
        Combination {
            element,
            operation,
            weights,
        }
        .apply(spans)
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn float32_sums_accumulate_in_float64_and_round_once() {
        // In float32, 1 + 2^-24 + 2^-24 stays 1 at every step; in float64
        // it is 1 + 2^-23, which float32 holds exactly.
        let tiny = 2f32.powi(-24);
        let spans = [f32s(&[1.0]), f32s(&[tiny]), f32s(&[tiny])];
        let sum = back_f32(&combine(ElementType::Float32, Operation::Sum, &spans));
        assert_eq!(sum, [1.0 + 2f32.powi(-23)]);
        assert_ne!(sum[0], 1.0f32 + tiny + tiny);
    }

    #[test]
    fn every_operation_gives_the_expected_values_on_float64() {
        let spans = [f64s(&[1.0, -4.0, 0.5]), f64s(&[3.0, 2.0, 0.25])];
        let run = |op| back_f64(&combine(ElementType::Float64, op, &spans));
        assert_eq!(run(Operation::Sum), [4.0, -2.0, 0.75]);
        assert_eq!(run(Operation::Mean), [2.0, -1.0, 0.375]);
        assert_eq!(run(Operation::Min), [1.0, -4.0, 0.25]);
        assert_eq!(run(Operation::Max), [3.0, 2.0, 0.5]);
        let weighted = combine_weighted(
            ElementType::Float64,
            Operation::WeightedMean,
            vec![3.0, 1.0],
            &spans,
        );
        assert_eq!(back_f64(&weighted), [1.5, -2.5, 0.4375]);
    }

    #[test]
    fn a_weight_of_zero_leaves_its_input_out() {
        let spans = [f32s(&[10.0, 20.0]), f32s(&[-7.0, 1e30])];
        let mean = combine_weighted(
            ElementType::Float32,
            Operation::WeightedMean,
            vec![2.0, 0.0],
            &spans,
        );
        assert_eq!(back_f32(&mean), [10.0, 20.0]);
    }

    #[test]
    fn nan_in_any_input_propagates_through_every_operation() {
        let spans = [f32s(&[f32::NAN, 1.0]), f32s(&[2.0, f32::NAN])];
        for op in [
            Operation::Sum,
            Operation::Mean,
            Operation::Min,
            Operation::Max,
            Operation::WeightedMean,
        ] {
            let out = back_f32(&combine_weighted(
                ElementType::Float32,
                op,
                vec![1.0, 1.0],
                &spans,
            ));
            assert!(out.iter().all(|v| v.is_nan()), "{op:?} gave {out:?}");
        }
    }

    #[test]
    fn weights_are_checked_and_put_in_the_inputs_order() {
        let inputs = keys(&["b", "a"]);
        let given = |pairs: &[(&str, f64)]| -> HashMap<String, f64> {
            pairs.iter().map(|(k, w)| (k.to_string(), *w)).collect()
        };
        let make = |op, pairs: &[(&str, f64)]| {
            Combination::new(ElementType::Float32, op, &inputs, &given(pairs))
        };

        let ok = make(Operation::WeightedMean, &[("a", 1.0), ("b", 2.0)]).unwrap();
        assert_eq!(ok.weights, [2.0, 1.0]);
        for (pairs, says) in [
            (&[("a", 1.0)][..], "key \"b\" has none"),
            (&[("a", 1.0), ("b", f64::NAN)][..], "finite"),
            (&[("a", 1.0), ("b", -1.0)][..], ">= 0"),
            (&[("a", 0.0), ("b", 0.0)][..], "add up to 0"),
            (&[("a", 1.0), ("b", 1.0), ("c", 1.0)][..], "\"c\""),
        ] {
            let error = make(Operation::WeightedMean, pairs).unwrap_err();
            assert!(matches!(error, Error::InvalidInput(_)), "{error}");
            assert!(error.to_string().contains(says), "{error}");
        }
        let error = make(Operation::Mean, &[("a", 1.0), ("b", 1.0)]).unwrap_err();
        assert!(error
            .to_string()
            .contains("only taken by the weighted mean"));
    }

    #[test]
    fn an_empty_span_gives_an_empty_result() {
        let out = combine(ElementType::Float64, Operation::Mean, &[Bytes::new()]);
        assert!(out.is_empty());
    }

    #[test]
    fn dtypes_match_only_their_little_endian_or_native_type() {
        assert!(ElementType::Float32.matches_dtype("<f4"));
        assert!(ElementType::Float32.matches_dtype("=f4"));
        assert!(ElementType::Float32.matches_dtype("f4"));
        assert!(ElementType::Float64.matches_dtype("<f8"));
        for other in [">f4", "<f8", "<i4", "|u1", "<<f4", "<f4 "] {
            assert!(!ElementType::Float32.matches_dtype(other), "{other}");
        }
    }
}
