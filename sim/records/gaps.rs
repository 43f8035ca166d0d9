//! A compact, exact log of one request's inter-token gaps: LEB128 varints of nanoseconds,
//! about 4 bytes a token instead of 8.

/// Inter-token gaps of one request, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GapLog {
    bytes: Vec<u8>,
}

impl GapLog {
    /// Appends a gap.
    pub fn push(&mut self, mut gap_ns: u64) {
        loop {
            let low = (gap_ns & 0x7f) as u8;
            gap_ns >>= 7;
            if gap_ns == 0 {
                self.bytes.push(low);
                return;
            }
            self.bytes.push(low | 0x80);
        }
    }

    /// The gaps in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let mut position = 0;
        std::iter::from_fn(move || {
            if position >= self.bytes.len() {
                return None;
            }
            let mut value = 0u64;
            let mut shift = 0;
            loop {
                let byte = self.bytes[position];
                position += 1;
                value |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    return Some(value);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let gaps = [0, 1, 127, 128, 16_383, 16_384, 25_000_000, u64::MAX];
        let mut log = GapLog::default();
        for gap in gaps {
            log.push(gap);
        }
        assert_eq!(log.iter().collect::<Vec<_>>(), gaps);
    }
}
