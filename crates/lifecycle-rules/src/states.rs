//! Reading Trident protect's states. NetApp documents the AMR's steady states only by example (`Established`,
//! `Promoted`; observed transitions `Establishing`, `Promoting`), a Snapshot's `Completed`, an AppVault's
//! `Available`; failure spellings are not documented at all. States are compared without regard to case, and
//! every plausible failure spelling counts as a failure. Any other state is "not there yet".

/// AMR, Snapshot and AppVault states that mean the object failed. Undocumented: every plausible spelling.
pub const FAILURE_STATES: [&str; 4] = ["Failed", "Error", "Failure", "Errored"];

/// Whether `state` is `expected` (case aside).
pub fn state_is(state: &str, expected: &str) -> bool {
    state.trim().eq_ignore_ascii_case(expected)
}

/// Whether `state` is a failure state.
pub fn is_failure_state(state: &str) -> bool {
    FAILURE_STATES.iter().any(|f| state_is(state, f))
}
