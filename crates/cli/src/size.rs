//! Size arguments: `4k`, `4K` and `4KiB` mean 4096, `4KB` means 4000.
//!
//! Binary multiples are what users of vmtouch, dd and ipcmk mean by a bare
//! letter; a `B` after the letter asks for decimal multiples as in `4KB`.
//! Fractions are accepted when they come out as whole bytes (`1.5G`).

use std::fmt;
use std::str::FromStr;

/// A byte count parsed from a size argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Size(pub(crate) u64);

impl Size {
    /// The size in bytes.
    pub(crate) fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_size(s).map(Size)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human_bytes(self.0))
    }
}

const SUFFIX_HELP: &str =
    "expected a number of bytes with an optional suffix: 4k, 4KiB (4096), 4KB (4000), 1.5G";

/// Parses a size argument into bytes.
pub(crate) fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    if s.is_empty() {
        return Err(format!("empty size; {SUFFIX_HELP}"));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() {
        return Err(format!("not a size; {SUFFIX_HELP}"));
    }
    let multiplier = multiplier(suffix.trim_start())
        .ok_or_else(|| format!("unknown size suffix '{suffix}'; {SUFFIX_HELP}"))?;

    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if (whole.is_empty() && frac.is_empty()) || frac.contains('.') || frac.len() > 18 {
        return Err(format!("not a size; {SUFFIX_HELP}"));
    }
    let too_large = || format!("too large (more than {} bytes)", u64::MAX);
    // Exact arithmetic in u128: value = (whole.frac digits) * multiplier.
    let digits: u128 = format!("{whole}{frac}").parse().map_err(|_| too_large())?;
    let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(u32::MAX));
    let scaled = digits
        .checked_mul(u128::from(multiplier))
        .ok_or_else(too_large)?;
    if scaled % scale != 0 {
        return Err("not a whole number of bytes".to_owned());
    }
    u64::try_from(scaled / scale).map_err(|_| too_large())
}

/// The multiplier for a suffix: a bare letter or `<letter>iB` is binary,
/// `<letter>B` decimal, `B` or nothing is bytes. Letters ignore case.
fn multiplier(suffix: &str) -> Option<u64> {
    let mut chars = suffix.chars();
    let Some(letter) = chars.next() else {
        return Some(1);
    };
    let rest: String = chars.collect();
    if letter.eq_ignore_ascii_case(&'b') {
        return rest.is_empty().then_some(1);
    }
    let power = match letter.to_ascii_lowercase() {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: u64 = match rest.as_str() {
        "" => 1024,
        r if r.eq_ignore_ascii_case("ib") => 1024,
        r if r.eq_ignore_ascii_case("b") => 1000,
        _ => return None,
    };
    Some(base.pow(power))
}

/// Formats a byte count for people: `512 B`, `4.0 KiB`, `1.5 GiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes() {
        for (text, bytes) in [
            ("4096", 4096),
            ("4k", 4096),
            ("4K", 4096),
            ("4KiB", 4096),
            ("4kib", 4096),
            ("4KB", 4000),
            ("4kB", 4000),
            ("64M", 64 << 20),
            ("1.5G", 3 << 29),
            ("1.5GB", 1_500_000_000),
            ("2 MiB", 2 << 20),
            ("7B", 7),
            ("0", 0),
            (".5k", 512),
            ("15E", 15 << 60),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn garbage_is_rejected_with_the_input_named() {
        for text in [
            "",
            "k",
            "abc",
            "4x",
            "4KiBB",
            "1.2.3",
            "-4k",
            "1.1",
            "99999999999999999999999",
            "4 k b",
        ] {
            let err = parse_size(text).expect_err(text);
            assert!(!err.is_empty());
        }
        assert!(parse_size("4x").unwrap_err().contains("'x'"));
        assert!(parse_size("16E").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes_print_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(300 << 20), "300 MiB");
    }
}
