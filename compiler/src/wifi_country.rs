//! Wi-Fi country codes as ESP-IDF accepts them.
//!
//! ESP-AT hands the factory parameter `country_code` to ESP-IDF's Wi-Fi driver. ESP-IDF's
//! `esp_wifi_set_country_code` documents the codes it accepts (`components/esp_wifi/include/
//! esp_wifi.h`, "@attention 6" and "@attention 9"; quoted with its source in
//! `docs/value-rules.md`): `"01"` (world safe mode) and 44 ISO 3166-1 alpha-2 codes, with an
//! optional third character that is one of `' '`, `'O'`, `'I'`, `'X'`. Anything else is
//! `ESP_ERR_INVALID_ARG` on the board — after it was flashed — so it is refused here.

/// The codes `esp_wifi_set_country_code` accepts, in ESP-IDF's order.
pub const COUNTRY_CODES: [&str; 45] = [
    "01", "AT", "AU", "BE", "BG", "BR", "CA", "CH", "CN", "CY", "CZ", "DE", "DK", "EE", "ES", "FI",
    "FR", "GB", "GR", "HK", "HR", "HU", "IE", "IN", "IS", "IT", "JP", "KR", "LI", "LT", "LU", "LV",
    "MT", "MX", "NL", "NO", "NZ", "PL", "PT", "RO", "SE", "SI", "SK", "TW", "US",
];

/// The third characters ESP-IDF gives a meaning (all environments, outdoor, indoor,
/// non-country entity).
pub const THIRD_CHARACTERS: [char; 4] = [' ', 'O', 'I', 'X'];

/// Why a country code is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountryError {
    /// Not in ESP-IDF's table.
    #[error("`{code}` is not a country code ESP-IDF accepts")]
    Unknown {
        /// The code as written.
        code: String,
        /// A close code from the table, if any.
        suggestion: Option<&'static str>,
    },
    /// A known code with a third character ESP-IDF does not know.
    #[error("the third character of `{code}` must be ' ', 'O' (outdoor), 'I' (indoor) or 'X'")]
    ThirdCharacter {
        /// The code as written.
        code: String,
    },
}

impl CountryError {
    /// What to write instead.
    pub fn help(&self) -> String {
        match self {
            CountryError::Unknown {
                suggestion: Some(s),
                ..
            } => format!("did you mean \"{s}\"? (ESP-IDF's codes are in docs/value-rules.md)"),
            CountryError::Unknown { .. } => format!(
                "use \"01\" (world safe mode) or one of: {}",
                COUNTRY_CODES[1..].join(" ")
            ),
            CountryError::ThirdCharacter { code } => {
                let two: String = code.chars().take(2).collect();
                format!(
                    "write \"{two}\" (ESP-IDF would silently drop the third character), or \"{two}O\", \"{two}I\" or \"{two}X\""
                )
            }
        }
    }
}

/// Checks a country code as `esp_wifi_set_country_code` would.
pub fn check(code: &str) -> Result<(), CountryError> {
    let chars: Vec<char> = code.chars().collect();
    let known = |two: &str| COUNTRY_CODES.contains(&two);
    match chars.as_slice() {
        [a, b] if known(&format!("{a}{b}")) => Ok(()),
        [a, b, c] if known(&format!("{a}{b}")) => {
            if THIRD_CHARACTERS.contains(c) {
                Ok(())
            } else {
                Err(CountryError::ThirdCharacter {
                    code: code.to_owned(),
                })
            }
        }
        _ => Err(CountryError::Unknown {
            code: code.to_owned(),
            suggestion: suggest(code),
        }),
    }
}

/// A table code the user probably meant: the same letters in upper case, or the first two
/// letters of a three-letter code (`USA` → `US`, `DEU` → `DE`).
fn suggest(code: &str) -> Option<&'static str> {
    let upper = code.trim().to_ascii_uppercase();
    let find = |s: &str| COUNTRY_CODES.iter().copied().find(|c| *c == s);
    find(&upper).or_else(|| upper.get(..2).and_then(find))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esp_idf_codes_are_accepted_and_others_refused() {
        for ok in [
            "01", "CN", "US", "DE", "JP", "TW", "USO", "DEI", "CNX", "GB ",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            check("XX"),
            Err(CountryError::Unknown {
                code: "XX".into(),
                suggestion: None
            })
        );
        assert_eq!(
            check("USA"),
            Err(CountryError::ThirdCharacter { code: "USA".into() })
        );
        assert_eq!(
            check("us"),
            Err(CountryError::Unknown {
                code: "us".into(),
                suggestion: Some("US")
            })
        );
        // Real ISO codes ESP-IDF does not list are refused too.
        assert!(check("VN").is_err());
        assert!(check("").is_err());
        assert!(check("DEUX").is_err());
    }
}
