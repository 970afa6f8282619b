//! The on-disk layout (see `FORMAT.md`): the file header, group headers and
//! record headers, all little-endian, and their encoding and checks.

/// The first 8 bytes of every memio-kv store.
pub(crate) const MAGIC: [u8; 8] = *b"MEMIOKV\0";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes reserved for the file header; the log starts here.
pub(crate) const HEADER_SIZE: u64 = 4096;
/// Offset of the committed length (`u64`), the word readers poll.
pub(crate) const COMMITTED_AT: usize = 64;
/// Offset of the durable length (`u64`).
pub(crate) const SYNCED_AT: usize = 72;
/// Offset of the superseded flag (`u64`, 0 or 1), set after compaction.
pub(crate) const SUPERSEDED_AT: usize = 80;

/// Bytes of a group header.
pub(crate) const GROUP_HEADER: usize = 32;
/// Magic of a group header.
pub(crate) const GROUP_MAGIC: u32 = u32::from_le_bytes(*b"KVG1");
/// Bytes of a record header.
pub(crate) const RECORD_HEADER: usize = 16;
/// Record kind: a key set to a value.
pub(crate) const PUT: u8 = 1;
/// Record kind: a key deleted.
pub(crate) const DELETE: u8 = 2;

/// Largest key, in bytes.
pub const MAX_KEY: usize = 4096;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 64 << 20;
/// Largest batch: the encoded records of one commit, in bytes.
pub const MAX_BATCH: usize = 1 << 30;

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The static part of the file header: bytes 0..32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub version: u32,
    /// Random per file: the chain value before the first group.
    pub salt: u32,
}

/// Why a file header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderFault {
    Magic,
    Version(u32),
    Checksum,
}

impl FileHeader {
    /// Bytes 0..32 of the file.
    pub fn encode(self) -> [u8; 32] {
        let mut b = [0; 32];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32c::crc32c(&b[..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; 32]) -> Result<Self, HeaderFault> {
        if b[..8] != MAGIC {
            return Err(HeaderFault::Magic);
        }
        let version = le_u32(b, 8);
        if crc32c::crc32c(&b[..20]) != le_u32(b, 20) || le_u32(b, 12) != HEADER_SIZE as u32 {
            return Err(HeaderFault::Checksum);
        }
        if version != FORMAT_VERSION {
            return Err(HeaderFault::Version(version));
        }
        Ok(Self {
            version,
            salt: le_u32(b, 16),
        })
    }
}

/// A group header: one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupHeader {
    pub count: u32,
    pub seq: u64,
    pub body_len: u32,
    /// CRC of the previous group (the file's salt before the first).
    pub prev_crc: u32,
    pub crc: u32,
}

impl GroupHeader {
    /// Encodes the header for `body`, computing its checksum.
    pub fn seal(count: u32, seq: u64, prev_crc: u32, body: &[u8]) -> ([u8; GROUP_HEADER], u32) {
        let mut b = [0; GROUP_HEADER];
        b[0..4].copy_from_slice(&GROUP_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&count.to_le_bytes());
        b[8..16].copy_from_slice(&seq.to_le_bytes());
        let body_len = u32::try_from(body.len()).expect("batch size checked against MAX_BATCH");
        b[16..20].copy_from_slice(&body_len.to_le_bytes());
        b[20..24].copy_from_slice(&prev_crc.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&b[..24]), body);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        (b, crc)
    }

    /// Parses a header; `None` if it is not one (wrong magic).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if le_u32(b, 0) != GROUP_MAGIC || le_u32(b, 28) != 0 {
            return None;
        }
        Some(Self {
            count: le_u32(b, 4),
            seq: le_u64(b, 8),
            body_len: le_u32(b, 16),
            prev_crc: le_u32(b, 20),
            crc: le_u32(b, 24),
        })
    }

    /// Whether `body` matches the checksum (header bytes in `head`).
    pub fn verify(&self, head: &[u8], body: &[u8]) -> bool {
        crc32c::crc32c_append(crc32c::crc32c(&head[..24]), body) == self.crc
    }
}

/// A record header inside a group body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub kind: u8,
    pub key_len: u16,
    pub val_len: u32,
    /// File offset of the previous version of this key's record, 0 if none.
    pub prev: u64,
}

impl RecordHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind);
        out.push(0);
        out.extend_from_slice(&self.key_len.to_le_bytes());
        out.extend_from_slice(&self.val_len.to_le_bytes());
        out.extend_from_slice(&self.prev.to_le_bytes());
    }

    pub fn parse(b: &[u8]) -> Self {
        Self {
            kind: b[0],
            key_len: u16::from_le_bytes([b[2], b[3]]),
            val_len: le_u32(b, 4),
            prev: le_u64(b, 8),
        }
    }

    /// Bytes of the whole record.
    pub fn len(&self) -> usize {
        RECORD_HEADER + usize::from(self.key_len) + self.val_len as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_round_trips_and_names_its_faults() {
        let h = FileHeader {
            version: FORMAT_VERSION,
            salt: 0xdead_beef,
        };
        let mut b = h.encode();
        assert_eq!(FileHeader::decode(&b), Ok(h));
        b[3] ^= 1;
        assert_eq!(FileHeader::decode(&b), Err(HeaderFault::Magic));
        b[3] ^= 1;
        b[17] ^= 1;
        assert_eq!(FileHeader::decode(&b), Err(HeaderFault::Checksum));
        let mut future = FileHeader {
            version: 7,
            salt: 1,
        }
        .encode();
        assert_eq!(FileHeader::decode(&future), Err(HeaderFault::Version(7)));
        future[0] = b'X';
        assert_eq!(FileHeader::decode(&future), Err(HeaderFault::Magic));
    }

    #[test]
    fn group_checksum_covers_header_and_body() {
        let body = b"some records";
        let (head, crc) = GroupHeader::seal(2, 9, 77, body);
        let g = GroupHeader::parse(&head).unwrap();
        assert_eq!((g.count, g.seq, g.prev_crc, g.crc), (2, 9, 77, crc));
        assert!(g.verify(&head, body));
        assert!(!g.verify(&head, b"some recordz"));
        let mut bad = head;
        bad[9] ^= 1;
        assert!(!GroupHeader::parse(&bad).unwrap().verify(&bad, body));
    }
}
