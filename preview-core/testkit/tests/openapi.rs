//! The OpenAPI body checker against the three descriptions the providers are tested with.
//!
//! The files are read from `preview_testkit::openapi::specs_dir()` (the crate's vendored
//! `specs/`, or `PREVIEW_SPECS_DIR`).

use std::sync::LazyLock;

use preview_testkit::openapi::{OpenApi, specs_dir};
use serde_json::{Value, json};

fn load(file: &str) -> OpenApi {
    match OpenApi::load(specs_dir().join(file)) {
        Ok(api) => api,
        Err(err) => panic!("{err} (set PREVIEW_SPECS_DIR to the folder with the API descriptions)"),
    }
}

static FLY: LazyLock<OpenApi> = LazyLock::new(|| load("fly-machines.openapi.fixed.json"));
static VERCEL: LazyLock<OpenApi> = LazyLock::new(|| load("vercel.trimmed.validatable.json"));
static GITHUB: LazyLock<OpenApi> = LazyLock::new(|| load("github-rest.trimmed.json"));

/// The error of a check that must fail, with every expected fragment in it.
#[track_caller]
fn fails(result: Result<(), String>, expected: &[&str]) -> String {
    let Err(message) = result else {
        panic!("check passed, expected an error containing {expected:?}");
    };
    for fragment in expected {
        assert!(
            message.contains(fragment),
            "error lacks {fragment:?}:\n{message}"
        );
    }
    message
}

#[track_caller]
fn passes(result: Result<(), String>) {
    if let Err(message) = result {
        panic!("{message}");
    }
}

#[test]
fn openapi_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + std::fmt::Debug>() {}
    assert_send_sync::<OpenApi>();
}

#[test]
fn load_names_the_file_it_cannot_read() {
    let err = OpenApi::load(specs_dir().join("no-such-spec.json")).unwrap_err();
    assert!(err.contains("no-such-spec.json"), "{err}");
    let debug = format!("{:?}", *FLY);
    assert!(debug.contains("fly-machines.openapi.fixed.json"), "{debug}");
}

// ---- Fly Machines --------------------------------------------------------------------------

#[test]
fn fly_create_app_request() {
    passes(FLY.check_request(
        "POST",
        "/v1/apps",
        &json!({"name": "pr-1-agents", "org_slug": "acme", "network": "pr-1-agents"}),
    ));
    // Query strings (undescribed `?wait=true` included) and full URLs are accepted.
    passes(FLY.check_request(
        "post",
        "http://127.0.0.1:4010/v1/apps?wait=true",
        &json!({"name": "pr-1-agents", "org_slug": "acme"}),
    ));
    fails(
        FLY.check_request("POST", "/v1/apps", &json!({"name": 1, "org_slug": "acme"})),
        &[
            "fly-machines.openapi.fixed.json",
            "POST /v1/apps request",
            "#/components/schemas/CreateAppRequest",
            "at /name:",
        ],
    );
    fails(
        FLY.check_request("POST", "/v1/apps", &json!(["pr-1-agents"])),
        &["at /:", "object"],
    );
    // The body is `required: true`.
    fails(
        FLY.check_request("POST", "/v1/apps", &Value::Null),
        &["a body is required"],
    );
}

fn machine_request() -> Value {
    json!({
        "name": "pr-1-agents-db",
        "region": "ams",
        "config": {
            "image": "postgres:17",
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
            "env": {"POSTGRES_DB": "app"},
            "mounts": [{"volume": "vol_123", "path": "/var/lib/postgresql/data"}],
            "services": [{
                "protocol": "tcp",
                "internal_port": 5432,
                "autostop": "stop",
                "autostart": true,
                "ports": [{"port": 5432}],
            }],
            "statics": [{"guest_path": "/srv/public", "url_prefix": "/static"}],
            "restart": {"policy": "on-failure", "max_retries": 3},
            "metadata": {"preview": "pr-1-agents"},
        },
    })
}

#[test]
fn fly_create_machine_request() {
    let path = "/v1/apps/pr-1-agents/machines";
    passes(FLY.check_request("POST", path, &machine_request()));

    // The fixed spec accepts the boolean `autostop` responses still use.
    let mut body = machine_request();
    body["config"]["services"][0]["autostop"] = json!(false);
    passes(FLY.check_request("POST", path, &body));

    let mut body = machine_request();
    body["config"]["guest"]["cpus"] = json!("two");
    body["config"]["statics"][0]
        .as_object_mut()
        .map(|s| s.remove("url_prefix"));
    body["config"]["services"][0]["autostop"] = json!("sometimes");
    let message = fails(
        FLY.check_request("POST", path, &body),
        &[
            "POST /v1/apps/{app_name}/machines request",
            "#/components/schemas/CreateMachineRequest",
            "3 violations",
            "at /config/guest/cpus:",
            "at /config/statics/0:",
            "url_prefix",
            "at /config/services/0/autostop:",
        ],
    );
    assert!(message.contains("\"two\""), "{message}");
}

#[test]
fn fly_responses() {
    passes(FLY.check_response(
        "POST",
        "/v1/apps",
        201,
        &json!({"id": "app_123", "created_at": 1_700_000_000_000_i64}),
    ));
    fails(
        FLY.check_response("POST", "/v1/apps", 201, &json!({"id": 123})),
        &["POST /v1/apps response 201", "at /id:"],
    );
    passes(FLY.check_response(
        "GET",
        "/v1/apps/pr-1-agents/machines/148ed123",
        200,
        &json!({
            "id": "148ed123",
            "name": "pr-1-agents-db",
            "state": "started",
            "region": "ams",
            "private_ip": "fdaa::3",
            "config": {"image": "postgres:17", "services": [{"internal_port": 5432, "autostop": true}]},
            "created_at": "2026-11-22T08:00:00Z",
        }),
    ));
    fails(
        FLY.check_response(
            "GET",
            "/v1/apps/pr-1-agents/machines/148ed123",
            200,
            &json!({"id": "148ed123", "config": {"guest": {"memory_mb": "256"}}}),
        ),
        &["at /config/guest/memory_mb:"],
    );
    // Fly's documented wait timeout (added in the fixed spec).
    passes(FLY.check_response(
        "GET",
        "/v1/apps/pr-1-agents/machines/148ed123/wait?state=started&timeout=60",
        408,
        &json!({"error": "machine failed to reach desired state, started, currently stopped"}),
    ));
}

#[test]
fn fly_status_without_a_body_schema() {
    // `DELETE /v1/apps/{app_name}` answers 202 with no content.
    passes(FLY.check_response("DELETE", "/v1/apps/pr-1-agents", 202, &Value::Null));
    fails(
        FLY.check_response("DELETE", "/v1/apps/pr-1-agents", 202, &json!({})),
        &["DELETE /v1/apps/{app_name} response 202", "must be Null"],
    );
    fails(
        FLY.check_response("DELETE", "/v1/apps/pr-1-agents", 404, &Value::Null),
        &["status not described", "202"],
    );
}

#[test]
fn fly_unknown_operations() {
    fails(
        FLY.check_request("POST", "/v1/nothing/here", &json!({})),
        &["no operation matches the path /v1/nothing/here"],
    );
    fails(
        FLY.check_response("GET", "/v2/apps", 200, &json!([])),
        &["no operation matches"],
    );
    fails(
        FLY.check_request("PUT", "/v1/apps", &json!({})),
        &["no PUT operation for /v1/apps"],
    );
    // A template parameter matches exactly one non-empty segment.
    fails(
        FLY.check_response("GET", "/v1/apps//machines", 200, &json!([])),
        &["no operation matches"],
    );
    fails(
        FLY.check_response("GET", "/v1/apps/a/b/machines", 200, &json!([])),
        &["no operation matches"],
    );
    // A body for an operation that takes none.
    fails(
        FLY.check_request("GET", "/v1/apps/pr-1-agents", &json!({"name": "x"})),
        &["takes no request body"],
    );
    passes(FLY.check_request("DELETE", "/v1/apps/pr-1-agents", &Value::Null));
}

// ---- Vercel --------------------------------------------------------------------------------

fn env_var() -> Value {
    json!({
        "key": "DATABASE_URL",
        "value": "postgres://u:p@pr-1-agents-db.flycast:5432/app",
        "type": "encrypted",
        "target": ["preview"],
        "gitBranch": "feature-1",
        "comment": "managed by preview",
    })
}

#[test]
fn vercel_create_env_request() {
    let path = "/v10/projects/prj_123/env?upsert=true";
    passes(VERCEL.check_request("POST", path, &env_var()));
    passes(VERCEL.check_request("POST", path, &json!([env_var(), env_var()])));
    let mut null_branch = env_var();
    null_branch["gitBranch"] = Value::Null;
    passes(VERCEL.check_request("POST", path, &null_branch));

    let mut missing = env_var();
    missing.as_object_mut().map(|m| m.remove("type"));
    fails(
        VERCEL.check_request("POST", path, &missing),
        &[
            "vercel.trimmed.validatable.json",
            "POST /v10/projects/{idOrName}/env request",
            // The body is `oneOf` one variable or a list; each alternative's reasons are listed.
            "'oneOf'",
            "alternative 0:",
            "at /: \"type\" is a required property",
            "alternative 1:",
        ],
    );
    let mut wrong = env_var();
    wrong["target"] = json!("preview");
    fails(
        VERCEL.check_request("POST", path, &wrong),
        &["at /target: \"preview\" is not of type \"array\""],
    );
    let mut unknown = env_var();
    unknown["target"] = json!(["staging"]);
    fails(
        VERCEL.check_request("POST", path, &unknown),
        &["at /target/0: \"staging\" is not one of"],
    );
}

#[test]
fn vercel_create_env_response() {
    let path = "/v10/projects/prj_123/env";
    let created = json!({
        "type": "encrypted",
        "value": "",
        "key": "DATABASE_URL",
        "id": "env_abc",
        "target": ["preview"],
        "gitBranch": "feature-1",
        "configurationId": null,
        "createdAt": 1_763_800_000_000_i64,
        "updatedAt": 1_763_800_000_000_i64,
    });
    passes(VERCEL.check_response(
        "POST",
        path,
        201,
        &json!({"created": created, "failed": []}),
    ));
    passes(VERCEL.check_response(
        "POST",
        path,
        201,
        &json!({"created": [created], "failed": [
            {"error": {"code": "ENV_CONFLICT", "message": "exists", "key": "DATABASE_URL"}}
        ]}),
    ));
    fails(
        VERCEL.check_response("POST", path, 201, &json!({"created": created})),
        &["POST /v10/projects/{idOrName}/env response 201", "failed"],
    );
    fails(
        VERCEL.check_response(
            "POST",
            path,
            201,
            &json!({"created": created, "failed": [{"error": {"code": 409}}]}),
        ),
        &["at /failed/0/error"],
    );
    // Vercel describes no error bodies: the documented `{"error": {..}}` cannot be checked.
    passes(VERCEL.check_response("POST", path, 400, &Value::Null));
    fails(
        VERCEL.check_response(
            "POST",
            path,
            400,
            &json!({"error": {"code": "bad_request", "message": "invalid"}}),
        ),
        &["no body schema"],
    );
    fails(
        VERCEL.check_request("POST", "/v10/teams/t/env", &env_var()),
        &["no operation matches"],
    );
}

// ---- GitHub --------------------------------------------------------------------------------

fn github_example(name: &str) -> Value {
    let path = specs_dir().join("github-rest.trimmed.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{err}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
    doc["components"]["examples"][name]["value"].clone()
}

#[test]
fn github_create_comment() {
    let path = "/repos/acme/agents/issues/42/comments";
    passes(GITHUB.check_request(
        "POST",
        path,
        &json!({"body": "Preview ready: https://pr-42.example.dev"}),
    ));
    fails(
        GITHUB.check_request("POST", path, &json!({})),
        &[
            "github-rest.trimmed.json",
            "POST /repos/{owner}/{repo}/issues/{issue_number}/comments request",
            "at /:",
            "\"body\" is a required property",
        ],
    );
    fails(
        GITHUB.check_request("POST", path, &json!({"body": 42})),
        &["at /body:"],
    );

    let comment = github_example("issue-comment");
    assert!(comment.is_object());
    passes(GITHUB.check_response("POST", path, 201, &comment));
    let mut wrong = comment.clone();
    wrong["id"] = json!("1");
    wrong.as_object_mut().map(|c| c.remove("user"));
    fails(
        GITHUB.check_response("POST", path, 201, &wrong),
        &[
            "#/components/schemas/issue-comment",
            "at /id:",
            "\"user\" is a required property",
        ],
    );
    // Responses behind `$ref: #/components/responses/...`.
    passes(GITHUB.check_response(
        "POST",
        path,
        404,
        &json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
    ));
    fails(
        GITHUB.check_response("POST", path, 404, &json!({"message": 404})),
        &["at /message:"],
    );
    passes(GITHUB.check_response("GET", path, 200, &github_example("issue-comment-items")));
    fails(
        GITHUB.check_response("GET", path, 200, &comment),
        &["at /:", "array"],
    );
    fails(
        GITHUB.check_request("POST", "/repos/acme/agents/issues/42/assignees", &json!({})),
        &["no operation matches"],
    );
}

#[test]
fn literal_segments_win_over_parameters() {
    // Both `/repos/{o}/{r}/issues/comments/{comment_id}` and
    // `/repos/{o}/{r}/issues/{issue_number}/comments` match; the first has the literal earlier
    // and answers one comment, the second a list.
    let path = "/repos/acme/agents/issues/comments/comments";
    passes(GITHUB.check_response("GET", path, 200, &github_example("issue-comment")));
    fails(
        GITHUB.check_response("GET", path, 200, &github_example("issue-comment-items")),
        &["GET /repos/{owner}/{repo}/issues/comments/{comment_id} response 200"],
    );
}

/// GitHub's own response examples are realistic bodies: each must pass the schema beside it.
///
/// Two drifts in GitHub's description are known and tolerated here: the `pull-request` examples
/// list `requested_teams` without `type`, which `team-simple` has required since it gained the
/// field; and the collaborator-permission example's `user` lacks `role_name`, which
/// `nullable-collaborator` requires. The real API sends both, so mocks built from these examples
/// must add them.
#[test]
fn github_examples_match_their_schemas() {
    let path = specs_dir().join("github-rest.trimmed.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{err}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut known_drift = 0;
    for (template, item) in doc["paths"].as_object().into_iter().flatten() {
        // An actual path: each `{param}` becomes a plausible segment.
        let actual: String = template
            .split('/')
            .map(|s| if s.starts_with('{') { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().into_iter().flatten() {
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                let Ok(status) = status.parse::<u16>() else {
                    continue;
                };
                let examples = response["content"]["application/json"]["examples"].as_object();
                for example in examples.into_iter().flatten().map(|(_, e)| e) {
                    let body = match example["$ref"].as_str() {
                        Some(r) => github_example(r.trim_start_matches("#/components/examples/")),
                        None => example["value"].clone(),
                    };
                    checked += 1;
                    match GITHUB.check_response(method, &actual, status, &body) {
                        Ok(()) => {}
                        Err(err)
                            if actual.contains("/pulls")
                                && err.contains("(1 violation)")
                                && err.contains(
                                    "requested_teams/0: \"type\" is a required property",
                                ) =>
                        {
                            known_drift += 1;
                        }
                        Err(err)
                            if actual.contains("/collaborators/")
                                && err.contains("(1 violation)")
                                && err
                                    .contains("at /user: \"role_name\" is a required property") =>
                        {
                            known_drift += 1;
                        }
                        Err(err) => failures.push(err),
                    }
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // If GitHub fixes its examples, drop the allowance above.
    assert_eq!(known_drift, 3, "the example drift changed");
}

#[test]
fn github_status_without_a_body_schema() {
    // `#/components/responses/not_modified` (304) has no content.
    passes(GITHUB.check_response("GET", "/repos/acme/agents/pulls/7", 304, &Value::Null));
    fails(
        GITHUB.check_response(
            "DELETE",
            "/repos/acme/agents/deployments/1",
            204,
            &json!(""),
        ),
        &["must be Null, not a JSON string"],
    );
}
