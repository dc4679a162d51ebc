//! Reading several chunk streams in lock-step: each step hands out one
//! span per input, all of the same length and a whole number of elements,
//! so they can be combined position by position.
//!
//! Inputs may have been pushed with different chunk sizes, so their chunk
//! boundaries need not line up, and a chunk size that is not a multiple of
//! the element width splits an element between two chunks. A step takes
//! the longest run every input holds in its current chunk (rounded down to
//! whole elements); when some input holds less than one element, the step
//! is that one element, stitched from the end of one chunk and the start
//! of the next. Spans are slices of the chunks, never copies, except for
//! such stitched elements.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::error::{Error, Result};

/// The raw chunks of one input, in order.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Several inputs of the same size, read in step.
pub struct Lockstep {
    inputs: Vec<Input>,
    remaining: u64,
    width: usize,
    max_span: usize,
}

struct Input {
    name: String,
    chunks: ChunkStream,
    /// What is left of the chunk being read.
    current: Bytes,
}

impl Lockstep {
    /// Reads `inputs` (named for errors), each of `size` bytes, in spans
    /// of whole elements of `width` bytes, at most `max_span` bytes each.
    pub fn new(
        inputs: Vec<(String, ChunkStream)>,
        size: u64,
        width: usize,
        max_span: usize,
    ) -> Self {
        let inputs = inputs
            .into_iter()
            .map(|(name, chunks)| Input {
                name,
                chunks,
                current: Bytes::new(),
            })
            .collect();
        Lockstep {
            inputs,
            remaining: size,
            width,
            max_span: max_span.max(width),
        }
    }

    /// The spans of every step, in order.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<Bytes>>> + Send {
        futures::stream::try_unfold(self, |mut steps| async move {
            Ok(steps.next_step().await?.map(|spans| (spans, steps)))
        })
    }

    /// One span per input, or `None` once every byte has been read.
    async fn next_step(&mut self) -> Result<Option<Vec<Bytes>>> {
        if self.remaining == 0 || self.inputs.is_empty() {
            return Ok(None);
        }
        for input in &mut self.inputs {
            input.fill().await?;
        }

        let shortest = self.inputs.iter().map(|i| i.current.len()).min();
        let shortest = shortest.unwrap_or(0);
        let span = if shortest >= self.width {
            let longest = shortest.min(self.max_span) as u64;
            let longest = longest.min(self.remaining) as usize;
            longest - longest % self.width
        } else {
            // Some input's next element is split between two chunks.
            self.width
        };

        let mut spans = Vec::with_capacity(self.inputs.len());
        for input in &mut self.inputs {
            spans.push(input.take(span).await?);
        }
        self.remaining -= span as u64;
        Ok(Some(spans))
    }
}

impl Input {
    /// Makes sure the current chunk holds at least one byte.
    async fn fill(&mut self) -> Result<()> {
        while self.current.is_empty() {
            match self.chunks.next().await {
                Some(chunk) => self.current = chunk?,
                None => {
                    return Err(Error::Internal(format!(
                        "the chunks of {} ended before its recorded size",
                        self.name
                    )))
                }
            }
        }
        Ok(())
    }

    /// The next `len` bytes, stitched across chunks when they must be.
    async fn take(&mut self, len: usize) -> Result<Bytes> {
        if self.current.len() >= len {
            return Ok(self.current.split_to(len));
        }
        let mut joined = BytesMut::with_capacity(len);
        while joined.len() < len {
            self.fill().await?;
            let part = (len - joined.len()).min(self.current.len());
            joined.extend_from_slice(&self.current.split_to(part));
        }
        Ok(joined.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input whose bytes are 0, 1, 2... cut into chunks of the given
    /// lengths.
    fn input(name: &str, cuts: &[usize]) -> (String, ChunkStream) {
        let mut start = 0usize;
        let chunks: Vec<Result<Bytes>> = cuts
            .iter()
            .map(|&len| {
                let chunk: Bytes = (start..start + len).map(|b| b as u8).collect();
                start += len;
                Ok(chunk)
            })
            .collect();
        (name.to_string(), Box::pin(futures::stream::iter(chunks)))
    }

    async fn steps(inputs: Vec<(String, ChunkStream)>, size: u64, width: usize) -> Vec<Vec<Bytes>> {
        let steps = Lockstep::new(inputs, size, width, 16).into_stream();
        futures::TryStreamExt::try_collect(steps).await.unwrap()
    }

    #[tokio::test]
    async fn misaligned_chunks_give_equal_spans_of_whole_elements_in_order() {
        // 40 bytes of 4-byte elements: chunks of 7, 10 and 40 bytes, so
        // elements straddle chunk boundaries and no boundary lines up.
        let inputs = vec![
            input("a", &[7, 7, 7, 7, 7, 5]),
            input("b", &[10, 10, 10, 10]),
            input("c", &[40]),
        ];
        let steps = steps(inputs, 40, 4).await;

        let expected: Vec<u8> = (0..40).collect();
        for which in 0..3 {
            let joined: Vec<u8> = steps.iter().flat_map(|s| s[which].to_vec()).collect();
            assert_eq!(joined, expected, "input {which}");
        }
        for step in &steps {
            let len = step[0].len();
            assert!(
                len > 0 && len % 4 == 0 && len <= 16,
                "a span of {len} bytes"
            );
            assert!(step.iter().all(|s| s.len() == len));
        }
    }

    #[tokio::test]
    async fn an_input_that_ends_early_is_an_error_not_a_short_result() {
        let inputs = vec![input("a", &[8, 8]), input("short", &[8])];
        let steps = Lockstep::new(inputs, 16, 4, 16).into_stream();
        let error = futures::TryStreamExt::try_collect::<Vec<_>>(steps)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("short"), "{error}");
    }

    #[tokio::test]
    async fn no_bytes_give_no_steps() {
        assert!(steps(vec![input("a", &[])], 0, 8).await.is_empty());
    }
}
