//! Which of the plausible forms the stand-in writes where NetApp leaves a format or a behaviour undocumented.
//!
//! [`Profile::Documented`] (the default) writes what the documentation and its examples show, and the stand-in's
//! best reading where they show nothing. [`Profile::Variant`] writes, for every undocumented field of
//! `docs/trident-protect-fields.md`, the OTHER plausible form, so that the plugin can be tested against both and
//! never rely on the stand-in's guess. What each form is lives in [`crate::rules::forms`].

use std::fmt;
use std::str::FromStr;

/// Environment variable that selects the profile where tests build the stand-in's configuration
/// ([`Profile::from_env`], [`crate::StandInConfig::from_env`]): `documented` (also when unset or empty) or
/// `variant`.
pub const PROFILE_ENV: &str = "TPROTECT_STANDIN_PROFILE";

/// The forms the stand-in writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// What NetApp documents or shows in its examples; the stand-in's guess where it shows nothing.
    #[default]
    Documented,
    /// The other plausible form of every undocumented field and behaviour.
    Variant,
}

impl Profile {
    /// Both profiles, documented first.
    pub const ALL: [Profile; 2] = [Profile::Documented, Profile::Variant];

    /// The name used on the command line and in [`PROFILE_ENV`].
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Documented => "documented",
            Profile::Variant => "variant",
        }
    }

    /// The profile [`PROFILE_ENV`] names; [`Profile::Documented`] when it is unset or empty.
    pub fn from_env() -> Result<Profile, crate::Error> {
        Self::from_env_value(std::env::var(PROFILE_ENV).ok().as_deref())
    }

    /// [`Profile::from_env`] for a given value of the variable (`None`: unset).
    pub fn from_env_value(value: Option<&str>) -> Result<Profile, crate::Error> {
        match value.map(str::trim) {
            None | Some("") => Ok(Profile::Documented),
            Some(text) => text.parse().map_err(|_| crate::Error::Profile {
                variable: PROFILE_ENV,
                value: text.to_string(),
            }),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A profile name that is neither `documented` nor `variant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown stand-in profile {:?}: expected documented or variant",
            self.0
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownProfile(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ignore_case() {
        for profile in Profile::ALL {
            assert_eq!(profile.as_str().parse::<Profile>(), Ok(profile));
            assert_eq!(profile.to_string().to_uppercase().parse::<Profile>(), Ok(profile));
        }
        assert_eq!(
            "documentd".parse::<Profile>().unwrap_err().to_string(),
            "unknown stand-in profile \"documentd\": expected documented or variant"
        );
    }

    #[test]
    fn the_environment_defaults_to_documented_and_names_a_bad_value() {
        assert_eq!(Profile::from_env_value(None).unwrap(), Profile::Documented);
        assert_eq!(Profile::from_env_value(Some("  ")).unwrap(), Profile::Documented);
        assert_eq!(
            Profile::from_env_value(Some("variant")).unwrap(),
            Profile::Variant
        );
        assert_eq!(
            Profile::from_env_value(Some("Variant ")).unwrap(),
            Profile::Variant
        );
        let error = Profile::from_env_value(Some("both")).unwrap_err().to_string();
        assert_eq!(
            error,
            "TPROTECT_STANDIN_PROFILE=\"both\" is not a stand-in profile: set it to documented or variant (or \
             leave it unset for documented)"
        );
    }
}
