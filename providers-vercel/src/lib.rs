//! Placeholder: filled by its provider issue.
