//! Endpoint path templates (`/users/{id}`) and backend URL templates
//! (`/v1/users/{id}?expand={resp0_kind}`), parsed once per configuration.

use std::fmt;

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}` or the other way round.
    #[error("unbalanced braces in {0:?}")]
    Unbalanced(String),
    /// `{}` or a name with characters other than letters, digits, `_`, `-`, `.`.
    #[error("invalid placeholder name {name:?} in {template:?}")]
    BadName { template: String, name: String },
    /// An endpoint path placeholder that does not fill a whole segment.
    #[error("placeholder {name:?} must fill a whole path segment in {template:?}")]
    PartialSegment { template: String, name: String },
    /// The same name twice in one endpoint path.
    #[error("placeholder {name:?} appears twice in {template:?}")]
    Duplicate { template: String, name: String },
    /// More placeholders than a route may hold.
    #[error("{template:?} has {count} placeholders; at most {MAX_PARAMS} are allowed")]
    TooManyParams { template: String, count: usize },
    /// A `{*name}` catch-all that is not the last segment.
    #[error("the catch-all {{*{name}}} must be the last segment of {template:?}")]
    CatchAllNotLast { template: String, name: String },
}

/// Most placeholders one endpoint path may hold. The router's radix tree cannot hold more
/// than 25 (it panics beyond), and no real API needs more than a handful.
pub const MAX_PARAMS: usize = 16;

/// A validated endpoint path such as `/users/{id}/orders`, or `/api/{*rest}` whose last
/// segment catches the rest of the path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathTemplate {
    raw: String,
    params: Vec<String>,
    catch_all: bool,
}

impl PathTemplate {
    /// Parses an endpoint path; placeholders must fill whole segments, and a `{*name}`
    /// catch-all may only be the last one.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let mut params = Vec::new();
        let mut catch_all = false;
        let segments: Vec<&str> = raw.split('/').collect();
        for (i, segment) in segments.iter().enumerate() {
            if let Some(name) = segment
                .strip_prefix("{*")
                .and_then(|rest| rest.strip_suffix('}'))
            {
                if i + 1 != segments.len() {
                    return Err(TemplateError::CatchAllNotLast {
                        template: raw.to_string(),
                        name: name.to_string(),
                    });
                }
                check_name(raw, name)?;
                if params.iter().any(|p| p == name) {
                    return Err(TemplateError::Duplicate {
                        template: raw.to_string(),
                        name: name.to_string(),
                    });
                }
                params.push(name.to_string());
                catch_all = true;
                continue;
            }
            let pieces = split_placeholders(raw, segment)?;
            for piece in &pieces {
                if let Piece::Param(name) = piece {
                    if pieces.len() != 1 {
                        return Err(TemplateError::PartialSegment {
                            template: raw.to_string(),
                            name: name.clone(),
                        });
                    }
                    if params.contains(name) {
                        return Err(TemplateError::Duplicate {
                            template: raw.to_string(),
                            name: name.clone(),
                        });
                    }
                    params.push(name.clone());
                }
            }
        }
        if params.len() > MAX_PARAMS {
            return Err(TemplateError::TooManyParams {
                template: raw.to_string(),
                count: params.len(),
            });
        }
        Ok(Self {
            raw: raw.to_string(),
            params,
            catch_all,
        })
    }

    /// Whether the last placeholder is a `{*name}` catch-all.
    pub fn has_catch_all(&self) -> bool {
        self.catch_all
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Placeholder names in order of appearance.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// The path with every placeholder written `{}` (a catch-all `{*}`): what tells routes
    /// apart.
    pub fn shape(&self) -> String {
        self.raw
            .split('/')
            .map(|seg| {
                if seg.starts_with("{*") {
                    "{*}"
                } else if seg.starts_with('{') {
                    "{}"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// One piece of a template: literal text or a `{name}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Piece {
    /// Text copied as is.
    Literal(String),
    /// A value filled in per request.
    Param(String),
}

/// A backend URL pattern (path and optional query) with placeholders anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UrlTemplate {
    raw: String,
    pieces: Vec<Piece>,
}

impl UrlTemplate {
    /// Parses a URL pattern such as `/users/{id}?fields={kind}`.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        Ok(Self {
            raw: raw.to_string(),
            pieces: split_placeholders(raw, raw)?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The literal and placeholder pieces in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Placeholder names used by the pattern.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Param(n) => Some(n.as_str()),
            Piece::Literal(_) => None,
        })
    }
}

fn check_name(template: &str, name: &str) -> Result<(), TemplateError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(TemplateError::BadName {
            template: template.to_string(),
            name: name.to_string(),
        });
    }
    Ok(())
}

fn split_placeholders(template: &str, text: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(TemplateError::Unbalanced(template.to_string()));
        }
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| TemplateError::Unbalanced(template.to_string()))?;
        let name = &after[..close];
        check_name(template, name)?;
        pieces.push(Piece::Param(name.to_string()));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_string()));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_params_in_order() {
        let t = PathTemplate::parse("/users/{id}/orders/{order}").unwrap();
        assert_eq!(t.params(), ["id", "order"]);
    }

    #[test]
    fn path_rejects_partial_and_duplicate_segments() {
        assert!(matches!(
            PathTemplate::parse("/users/x{id}"),
            Err(TemplateError::PartialSegment { .. })
        ));
        assert!(matches!(
            PathTemplate::parse("/a/{id}/{id}"),
            Err(TemplateError::Duplicate { .. })
        ));
        assert!(matches!(
            PathTemplate::parse("/a/{id"),
            Err(TemplateError::Unbalanced(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/a/{}"),
            Err(TemplateError::BadName { .. })
        ));
    }

    #[test]
    fn catch_all_is_last_and_counts_as_a_param() {
        let t = PathTemplate::parse("/api/{v}/{*rest}").unwrap();
        assert_eq!(t.params(), ["v", "rest"]);
        assert!(t.has_catch_all());
        assert_eq!(t.shape(), "/api/{}/{*}");
        assert!(matches!(
            PathTemplate::parse("/api/{*rest}/x"),
            Err(TemplateError::CatchAllNotLast { .. })
        ));
        assert!(matches!(
            PathTemplate::parse("/api/{rest}/{*rest}"),
            Err(TemplateError::Duplicate { .. })
        ));
        assert!(!PathTemplate::parse("/api/{v}").unwrap().has_catch_all());
    }

    #[test]
    fn too_many_placeholders_are_refused() {
        let path: String = (0..=MAX_PARAMS).map(|i| format!("/{{p{i}}}")).collect();
        assert!(matches!(
            PathTemplate::parse(&path),
            Err(TemplateError::TooManyParams { count, .. }) if count == MAX_PARAMS + 1
        ));
        let path: String = (0..MAX_PARAMS).map(|i| format!("/{{p{i}}}")).collect();
        assert!(PathTemplate::parse(&path).is_ok());
    }

    #[test]
    fn url_pattern_pieces() {
        let t = UrlTemplate::parse("/u/{id}?x={resp0_a.b}&y=1").unwrap();
        assert_eq!(
            t.pieces(),
            [
                Piece::Literal("/u/".into()),
                Piece::Param("id".into()),
                Piece::Literal("?x=".into()),
                Piece::Param("resp0_a.b".into()),
                Piece::Literal("&y=1".into()),
            ]
        );
        assert_eq!(t.params().collect::<Vec<_>>(), ["id", "resp0_a.b"]);
    }
}
