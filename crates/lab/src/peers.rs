//! The heavy peers: libraries the lab compares memio against that bring a
//! large build (C code, mostly) and so sit behind one cargo feature each.

use serde::Serialize;

/// A heavy peer and whether this build has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HeavyPeer {
    /// The cargo feature of memio-lab (and memio-cli) that builds it.
    pub name: &'static str,
    /// What it is, as the report names it.
    pub what: &'static str,
    /// Whether the feature was on in this build.
    pub built: bool,
}

const PEERS: [HeavyPeer; 6] = [
    HeavyPeer {
        name: "sqlite",
        what: "SQLite (bundled)",
        built: cfg!(feature = "sqlite"),
    },
    HeavyPeer {
        name: "lmdb",
        what: "LMDB",
        built: cfg!(feature = "lmdb"),
    },
    HeavyPeer {
        name: "redb",
        what: "redb",
        built: cfg!(feature = "redb"),
    },
    HeavyPeer {
        name: "jemalloc",
        what: "jemalloc",
        built: cfg!(feature = "jemalloc"),
    },
    HeavyPeer {
        name: "mimalloc",
        what: "mimalloc",
        built: cfg!(feature = "mimalloc"),
    },
    HeavyPeer {
        name: "iceoryx2",
        what: "iceoryx2",
        built: cfg!(feature = "iceoryx2"),
    },
];

/// Every heavy peer the lab knows, built in this binary or not.
#[must_use]
pub fn heavy_peers() -> &'static [HeavyPeer] {
    &PEERS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_follows_its_feature() {
        let built = |name| heavy_peers().iter().find(|p| p.name == name).unwrap().built;
        assert_eq!(built("sqlite"), cfg!(feature = "sqlite"));
        assert_eq!(built("mimalloc"), cfg!(feature = "mimalloc"));
        assert_eq!(heavy_peers().len(), 6);
    }
}
