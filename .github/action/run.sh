#!/usr/bin/env bash
# Runs `preview COMMAND --config CONFIG [ARGS…]` for action.yml, and passes on the outputs the
# command writes for Actions (environment, <app>_url, <app>_deployment_url): each as a step output,
# and all of them as one JSON object, `outputs_json`, so apps of any name are reachable.
#
# Inputs come as environment variables (never spliced into the script): PREVIEW_COMMAND,
# PREVIEW_CONFIG, PREVIEW_ARGS (split on whitespace, no globbing, no shell evaluation).
set -euo pipefail

commands="plan deploy teardown sweep status exec handle"
command="${PREVIEW_COMMAND:-}"
case " $commands " in
  *" $command "*) ;;
  *)
    echo "::error title=preview::unknown command '$command'; use one of: $commands"
    exit 2
    ;;
esac
config="${PREVIEW_CONFIG:-preview.toml}"
read -r -a extra <<< "${PREVIEW_ARGS:-}"

step_output="${GITHUB_OUTPUT:-}"
own_output="$(mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/preview-outputs.XXXXXX")"
trap 'rm -f "$own_output"' EXIT

status=0
GITHUB_OUTPUT="$own_output" preview "$command" --config "$config" ${extra[@]+"${extra[@]}"} || status=$?
if [ "$status" -eq 3 ]; then
  # Exit code 3 is preview's "skipped on purpose" (a closed, merged or fork pull request, or an
  # event `handle` decided to skip; the log says why): not a failed job.
  echo "::notice title=preview::$command skipped on purpose (the log says why)"
  status=0
fi

if [ -n "$step_output" ]; then
  json=""
  while IFS= read -r line; do
    key="${line%%=*}"
    value="${line#*=}"
    # The CLI writes single-line name=value pairs; anything else is not passed on.
    [[ "$line" == *=* && "$key" =~ ^[A-Za-z0-9_-]+$ ]] || continue
    echo "$key=$value" >> "$step_output"
    value="${value//[$'\001'-$'\037']/}"
    value="${value//\\/\\\\}"
    value="${value//\"/\\\"}"
    json="${json:+$json,}\"$key\":\"$value\""
  done < "$own_output"
  echo "outputs_json={$json}" >> "$step_output"
fi
exit "$status"
