//! Conditional reads of pull requests: one PR, and the open ones page by page, each sent with
//! `If-None-Match` when an earlier answer's ETag is cached, and a `304` (free against GitHub's
//! primary rate limit) answered from what that answer said.
//!
//! # Pages
//! GitHub's ETag of a page covers that page only, and its 304 carries no `link` header. So every
//! page is asked again each time (a 304 on page 1 says nothing about page 2: a PR closed on page
//! 3 changes page 3 alone), the next page's link comes from the cached page on a 304, and a fresh
//! page 1 re-validates the later pages rather than trusting them (a PR opened or closed before
//! them shifts their content, so they answer 200 with the new content). One case escapes the
//! page's ETag: a full last page cannot show that a PR older than all of its items reopened
//! behind it (the page is unchanged, its missing `next` link is not), so it is asked without
//! `If-None-Match`. A PR that appears on two pages because the list shifted while it was being
//! read is listed once.

use std::collections::HashSet;
use std::sync::Arc;

use preview_core::{PrNumber, PullRequest, Result};
use url::Url;

use crate::core::{Conditional, check_pages, found, not_modified_uncached};
use crate::etag_cache::OpenPage;
use crate::host::GitHubSource;

impl GitHubSource {
    /// One pull request, conditional on the ETag of its last read.
    pub(crate) async fn pull_request(&self, pr: PrNumber) -> Result<Option<PullRequest>> {
        let key = self.core().pull_request_url(pr).to_string();
        let cached = self.cache.pulls.lock().ok().and_then(|mut c| c.get(&key));
        let etag = cached.as_ref().map(|(etag, _)| etag.as_str());
        let Some(answer) = found(self.core().pull_request(pr, etag).await)? else {
            return Ok(None);
        };
        let (etag, wire) = match answer {
            // 304: unchanged since the cached read.
            Conditional::NotModified => {
                return match cached {
                    Some((_, pr)) => Ok(Some(PullRequest::clone(&pr))),
                    None => Err(not_modified_uncached(&format!("pull request {pr}"))),
                };
            }
            Conditional::Fresh { etag, value } => (etag, value),
        };
        let pr = self.convert(wire)?;
        if let Ok(mut c) = self.cache.pulls.lock() {
            match etag {
                Some(etag) => c.insert(key, etag, Arc::new(pr.clone())),
                None => c.remove(&key),
            }
        }
        Ok(Some(pr))
    }

    /// Every open pull request, every page asked conditionally (see the module docs).
    pub(crate) async fn open_pull_requests(&self) -> Result<Vec<PullRequest>> {
        let what = "pull requests";
        let mut out = Vec::new();
        let mut listed: HashSet<PrNumber> = HashSet::new();
        let mut next = Some(self.core().open_pull_requests_url());
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            check_pages(pages, what)?;
            let page = self.open_page(url, what).await?;
            for pr in &page.items {
                if listed.insert(pr.number) {
                    out.push(pr.clone());
                }
            }
            next = page.next.clone();
        }
        Ok(out)
    }

    /// One page, from GitHub or (on a 304) from the cache.
    async fn open_page(&self, url: Url, what: &str) -> Result<Arc<OpenPage>> {
        let key = url.to_string();
        let cached = self
            .cache
            .pages
            .lock()
            .ok()
            .and_then(|mut c| c.get(&key))
            // A full last page cannot vouch for what may have appeared behind it.
            .filter(|(_, page)| page.next.is_some() || !page.full);
        let etag = cached.as_ref().map(|(etag, _)| etag.as_str());
        match self.core().open_pull_requests_page(url, etag).await? {
            Conditional::NotModified => match cached {
                Some((_, page)) => Ok(page),
                None => Err(not_modified_uncached(what)),
            },
            Conditional::Fresh { etag, value } => {
                let full = value.items.len() >= self.core().list_page_size();
                let items = value
                    .items
                    .into_iter()
                    .map(|p| self.convert(p))
                    .collect::<Result<Vec<_>>>()?;
                let page = Arc::new(OpenPage {
                    items,
                    next: value.next,
                    full,
                });
                if let Ok(mut c) = self.cache.pages.lock() {
                    match etag {
                        Some(etag) => c.insert(key, etag, page.clone()),
                        None => c.remove(&key),
                    }
                }
                Ok(page)
            }
        }
    }
}
