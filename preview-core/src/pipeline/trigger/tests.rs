//! The decision table: every event × draft/ready × label present/absent × paths matching/not ×
//! fork/same-repository, against the rules as the module docs state them.

use super::*;
use crate::config::PathFilter;
use crate::name::PrNumber;

fn triggers() -> TriggersDef {
    TriggersDef {
        drafts: false,
        label: Some("preview".into()),
        paths: Some(PathFilter::new(&["apps/**"]).unwrap()),
        commands: true,
        command_permission: Permission::Write,
    }
}

fn pr(state: PrState, draft: bool, label: bool, fork: bool) -> PullRequest {
    PullRequest {
        number: PrNumber::new(7).unwrap(),
        state,
        draft,
        title: "t".into(),
        head_branch: "b".into(),
        head_sha: "a".repeat(40),
        head_repo: Some(if fork { "mallory/app" } else { "acme/app" }.into()),
        base_repo: "acme/app".into(),
        labels: if label {
            vec!["Preview".into(), "bug".into()]
        } else {
            vec!["bug".into()]
        },
    }
}

fn files(matching: bool) -> ChangedFiles {
    ChangedFiles {
        paths: if matching {
            vec!["README.md".into(), "apps/web/page.tsx".into()]
        } else {
            vec!["README.md".into(), "docs/apps/x.md".into()]
        },
        complete: true,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    Pr(PrAction),
    Deploy,
}

fn event(e: Ev) -> TriggerEvent {
    match e {
        Ev::Pr(action) => TriggerEvent::PullRequest {
            action,
            label: matches!(action, PrAction::Labeled | PrAction::Unlabeled)
                .then(|| "preview".to_string()),
        },
        Ev::Deploy => TriggerEvent::Comment {
            id: 1,
            author: "maintainer".into(),
            invocation: Some(Invocation::Known {
                command: Command::Deploy,
                args: vec![],
            }),
        },
    }
}

/// The rules, written as the README's table states them.
fn expected(e: Ev, draft: bool, label: bool, paths: bool, fork: bool) -> Action {
    use PrAction::*;
    if fork {
        return Action::Skip;
    }
    let eligible = !draft && label && paths;
    match e {
        Ev::Pr(Closed) => Action::Teardown,
        Ev::Pr(Opened | Synchronize | Reopened | ReadyForReview | Labeled) if eligible => {
            Action::Deploy
        }
        Ev::Pr(Unlabeled) if !label => Action::Teardown,
        Ev::Pr(ConvertedToDraft) if draft => Action::Teardown,
        Ev::Pr(_) => Action::Skip,
        Ev::Deploy => Action::Command(Command::Deploy),
    }
}

#[test]
fn every_event_and_state_decides_as_documented() {
    let t = triggers();
    let events: Vec<Ev> = PrAction::ALL
        .into_iter()
        .map(Ev::Pr)
        .chain([Ev::Deploy])
        .collect();
    let mut rows = 0;
    for e in events {
        for draft in [false, true] {
            for label in [false, true] {
                for paths in [false, true] {
                    for fork in [false, true] {
                        let state = if e == Ev::Pr(PrAction::Closed) {
                            PrState::Closed
                        } else {
                            PrState::Open
                        };
                        let pr = pr(state, draft, label, fork);
                        let ev = event(e);
                        let f = files(paths);
                        let facts = Facts {
                            pr: &pr,
                            files: needs_files(&ev, &t, &pr).then_some(&f),
                            permission: needs_permission(&ev, &t, &pr).then_some(Permission::Write),
                        };
                        let d = decide(&ev, &t, facts);
                        let row = format!(
                            "{e:?} draft={draft} label={label} paths={paths} fork={fork}: {d:?}"
                        );
                        assert_eq!(d.action, expected(e, draft, label, paths, fork), "{row}");
                        assert!(!d.reason.is_empty(), "{row}");
                        // Files are read only when they can change the outcome.
                        if facts.files.is_some() {
                            assert!(!draft && label && !fork, "{row}");
                        }
                        if fork && e == Ev::Deploy {
                            assert!(d.reply.as_deref().unwrap().contains("fork"), "{row}");
                            assert_eq!(d.reaction, None, "{row}");
                        }
                        rows += 1;
                    }
                }
            }
        }
    }
    assert_eq!(rows, 9 * 16);
}

#[test]
fn skips_say_how_to_get_a_preview() {
    let t = triggers();
    let opened = event(Ev::Pr(PrAction::Opened));
    let decide_on = |pr: &PullRequest, matching: bool| {
        let f = files(matching);
        decide(
            &opened,
            &t,
            Facts {
                pr,
                files: Some(&f),
                permission: None,
            },
        )
    };
    let d = decide_on(&pr(PrState::Open, true, true, false), true);
    assert!(d.explains_no_preview && d.reason.contains("draft"), "{d:?}");
    let d = decide_on(&pr(PrState::Open, false, false, false), true);
    assert_eq!(d.reason, "no preview: add the label `preview` to get one");
    let d = decide_on(&pr(PrState::Open, false, true, false), false);
    assert_eq!(d.reason, "no preview: no changed path matches `apps/**`");
    // Beyond GitHub's 3,000 listed files, unlisted files may match: deploy.
    let capped = ChangedFiles {
        paths: vec!["x".into(); 3000],
        complete: false,
    };
    let pr = pr(PrState::Open, false, true, false);
    let d = decide(
        &opened,
        &t,
        Facts {
            pr: &pr,
            files: Some(&capped),
            permission: None,
        },
    );
    assert_eq!(d.action, Action::Deploy, "{d:?}");
    // Not read when needed: never deploy blind.
    let d = decide(
        &opened,
        &t,
        Facts {
            pr: &pr,
            files: None,
            permission: None,
        },
    );
    assert_eq!(d.action, Action::Skip, "{d:?}");
}

#[test]
fn labels_other_than_the_trigger_and_stale_events_change_nothing() {
    let t = triggers();
    let with = pr(PrState::Open, false, true, false);
    let without = pr(PrState::Open, false, false, false);
    let f = files(true);
    let on = |action, label: &str, pr: &PullRequest| {
        let ev = TriggerEvent::PullRequest {
            action,
            label: Some(label.into()),
        };
        decide(
            &ev,
            &t,
            Facts {
                pr,
                files: Some(&f),
                permission: None,
            },
        )
        .action
    };
    assert_eq!(on(PrAction::Labeled, "bug", &with), Action::Skip);
    assert_eq!(on(PrAction::Unlabeled, "bug", &without), Action::Skip);
    assert_eq!(on(PrAction::Labeled, "PREVIEW", &with), Action::Deploy);
    // The event says removed, the PR says it is back: the current state wins.
    assert_eq!(on(PrAction::Unlabeled, "preview", &with), Action::Skip);
    // The event says added, the PR says it is gone again.
    assert_eq!(on(PrAction::Labeled, "preview", &without), Action::Skip);
    // No label configured: labels never act; drafts on: drafting keeps the preview.
    let open = TriggersDef::default();
    let ev = TriggerEvent::PullRequest {
        action: PrAction::Unlabeled,
        label: Some("preview".into()),
    };
    assert_eq!(
        decide(
            &ev,
            &open,
            Facts {
                pr: &without,
                files: None,
                permission: None
            }
        )
        .action,
        Action::Skip
    );
    let ev = TriggerEvent::PullRequest {
        action: PrAction::ConvertedToDraft,
        label: None,
    };
    let draft = pr(PrState::Open, true, false, false);
    assert_eq!(
        decide(
            &ev,
            &open,
            Facts {
                pr: &draft,
                files: None,
                permission: None
            }
        )
        .action,
        Action::Skip
    );
    let ev = TriggerEvent::PullRequest {
        action: PrAction::Opened,
        label: None,
    };
    assert_eq!(
        decide(
            &ev,
            &open,
            Facts {
                pr: &draft,
                files: None,
                permission: None
            }
        )
        .action,
        Action::Deploy
    );
}

#[test]
fn commands_need_the_permission_read_through_the_api() {
    let t = triggers();
    let pr = pr(PrState::Open, false, false, false);
    let deploy = event(Ev::Deploy);
    let with = |permission| {
        decide(
            &deploy,
            &t,
            Facts {
                pr: &pr,
                files: None,
                permission,
            },
        )
    };
    for p in [
        None,
        Some(Permission::None),
        Some(Permission::Read),
        Some(Permission::Triage),
    ] {
        let d = with(p);
        assert_eq!(d.action, Action::Skip, "{p:?}");
        assert_eq!(d.reaction, None, "a refusal is answered by its reply only");
        assert!(d.reply.as_deref().unwrap().contains("`write`"), "{d:?}");
    }
    for p in [Permission::Write, Permission::Maintain, Permission::Admin] {
        let d = with(Some(p));
        assert_eq!(d.action, Action::Command(Command::Deploy));
        assert_eq!(d.reaction, Some(Reaction::Accepted));
        assert_eq!(d.reply, None);
    }
    let unknown = TriggerEvent::Comment {
        id: 1,
        author: "m".into(),
        invocation: Some(Invocation::Unknown),
    };
    let d = decide(
        &unknown,
        &t,
        Facts {
            pr: &pr,
            files: None,
            permission: Some(Permission::Admin),
        },
    );
    assert_eq!(
        (d.action, d.reaction),
        (Action::Skip, Some(Reaction::Unknown))
    );
    let help = d.reply.unwrap();
    assert_eq!(
        crate::command::parse_comment(&help),
        None,
        "our help must not read as a command: {help}"
    );
    let off = TriggersDef {
        commands: false,
        ..triggers()
    };
    assert!(!needs_permission(&deploy, &off, &pr));
    let d = decide(
        &deploy,
        &off,
        Facts {
            pr: &pr,
            files: None,
            permission: None,
        },
    );
    assert_eq!((d.action, d.reply), (Action::Skip, None));
    let none = TriggerEvent::Comment {
        id: 1,
        author: "m".into(),
        invocation: None,
    };
    assert!(!needs_permission(&none, &t, &pr));
    assert_eq!(
        decide(
            &none,
            &t,
            Facts {
                pr: &pr,
                files: None,
                permission: None
            }
        )
        .reply,
        None
    );
    let closed = self::pr(PrState::Merged, false, false, false);
    let d = decide(
        &deploy,
        &t,
        Facts {
            pr: &closed,
            files: None,
            permission: Some(Permission::Write),
        },
    );
    assert_eq!(d.action, Action::Skip);
    assert!(d.reply.unwrap().contains("closed"));
}
