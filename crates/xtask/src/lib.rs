//! The parts of `cargo xtask` that tests use too: [`release_cmd`] builds the plugin's release archives, and the
//! end-to-end distribution test checks the real archive it makes; [`lifecycle_walk`] builds the binaries the
//! demo runs, as the README test builds them.

pub mod lifecycle_walk;
pub mod release_cmd;
