//! The parts of `cargo xtask` that tests use too: [`release_cmd`] builds the plugin's release archives, and the
//! end-to-end distribution test checks the real archive it makes.

pub mod release_cmd;
