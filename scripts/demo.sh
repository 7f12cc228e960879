#!/usr/bin/env bash
# Sika's main job on the embedded defaults: a season's subsidies paid to 1,000 farmers
# through the operator sandbox, with maker-checker, a pre-flight of every farmer's wallet
# (a few held out because the wallet is in someone else's name, one included by the
# maker with a reason), a progress bar and the batch summary.
# Every act is a request signed with the acting person's own key, each person's keys in a
# directory of their own, as if on their own laptop.
#
# The demo owns its SIKA_HOME (./.sika unless set): each run starts it afresh, so it
# always tells the same story. It refuses a SIKA_HOME that holds anything else.
set -euo pipefail

export SIKA_HOME="${SIKA_HOME:-./.sika}"
unset SIKA_DATABASE_URL SIKA_BROKER_URL SIKA_AGENT
export SIKA_OPERATOR_TIMEOUT=2
# the sandbox answers at once: query a pending payout three times, then leave it to
# callbacks and reconciliation, as production does after several minutes
export SIKA_STATUS_CHECK_DELAYS="[1, 2, 4]"
export SIKA_LOG_LEVEL=WARNING
MARKER="$SIKA_HOME/.demo-home"
# each person's private key sits on their own machine, never under the server's SIKA_HOME:
# here one directory a person, beside it
PEOPLE="${SIKA_HOME%/}-keys"
SANDBOX_PID="$SIKA_HOME/sandbox.pid"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# `as awa sika ...`: run a command on Awa's laptop, with her keys and her name
as() { local who=$1; shift; SIKA_KEYS_DIR="$PEOPLE/$who" SIKA_AGENT="$who" "$@"; }
# `refused CMD...`: a command Sika must refuse; its one-sentence refusal is shown
refused() {
    printf '$ %s\n' "$*"
    if "$@"; then
        echo "unexpected: Sika accepted that" >&2
        exit 1
    fi
}
json_field() { python -c "import json,sys; print(json.load(sys.stdin)$1)"; }

started=$(date +%s)

if [[ -e "$SIKA_HOME" && ! -e "$MARKER" ]]; then
    echo "error: $SIKA_HOME holds data that is not the demo's; set SIKA_HOME to another directory" >&2
    exit 1
fi
if [[ -e "$MARKER" ]]; then
    step "Starting afresh: stopping the previous demo's sandbox and database"
    if [[ -f "$SANDBOX_PID" ]]; then kill "$(cat "$SANDBOX_PID")" 2>/dev/null || true; fi
    sika db stop >/dev/null 2>&1 || true
    rm -rf "$SIKA_HOME" "$PEOPLE"
fi
mkdir -p "$SIKA_HOME"
touch "$MARKER"

step "The operator sandbox: Flooz (SOAP), T-Money (JSON) and an SMS gateway on one port"
PORT=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
export SIKA_SANDBOX_URL="http://127.0.0.1:$PORT"
sika sandbox serve --port "$PORT" --hang-seconds 4 >"$SIKA_HOME/sandbox.log" 2>&1 &
echo $! >"$SANDBOX_PID"
for _ in $(seq 100); do
    if python -c "import httpx,sys; httpx.get('$SIKA_SANDBOX_URL/_sandbox/health').raise_for_status()" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
echo "sandbox at $SIKA_SANDBOX_URL (pid $(cat "$SANDBOX_PID"), log $SIKA_HOME/sandbox.log)"

step "Each person makes a key on their own laptop ($PEOPLE/NAME); the first admin enrols them"
echo "Awa prepares batches (maker), Kodjo approves them (approver), Afi funds (treasurer),"
echo "Yao reconciles (auditor); root, the first admin, manages people and keys only."
for who in root awa kodjo afi yao; do
    as "$who" sika agent keygen "$who" >"$SIKA_HOME/$who.pub" 2>/dev/null
done
sika agent bootstrap root --public-key "$SIKA_HOME/root.pub" >/dev/null
run as root sika agent add awa --role maker --public-key "$SIKA_HOME/awa.pub"
run as root sika agent add kodjo --role approver --public-key "$SIKA_HOME/kodjo.pub"
run as root sika agent add afi --role treasurer --public-key "$SIKA_HOME/afi.pub"
run as root sika agent add yao --role auditor --public-key "$SIKA_HOME/yao.pub"
echo "Awa's laptop holds $(ls "$PEOPLE/awa"); Kodjo's holds $(ls "$PEOPLE/kodjo")"

step "1,000 farmers, a few on the sandbox's test numbers, imported into the registry"
echo "Three of them are registered on numbers ending 000010, whose wallets the sandbox names"
echo "after someone else: the registry's name and the wallet holder's differ."
python -c "
from pathlib import Path
from agripme.sample import write_sample_registry
write_sample_registry(Path('$SIKA_HOME/farmers.csv'), 1000,
                      test_numbers=('000002', '000006', '000007', '000009'), mismatched=3)"
run as awa sika agripme farmers import "$SIKA_HOME/farmers.csv" --agent awa

step "Season 2026A: 4,000 FCFA a bag, up to 3 bags by farm size; Afi, the treasurer, books its budget"
cat >"$SIKA_HOME/season-2026A.toml" <<'TOML'
per_bag = 4000                 # FCFA per 50 kg bag
max_bags = 3
budget = 50000000              # FCFA for the season
[[bands]]
below_ha = 1.0
bags = 1
[[bands]]
below_ha = 2.0
bags = 2
[[bands]]
bags = 3
TOML
run as afi sika agripme season create 2026A --rules "$SIKA_HOME/season-2026A.toml" --agent afi

step "Awa builds the batch: every farmer's wallet is looked up at its operator (the pre-flight), then she signs its manifest"
echo "Numbers that are not wallets are excluded (the farmers stay eligible for a later batch);"
echo "wallets in someone else's name are held out until the maker decides."
created=$(as awa sika agripme batch create --season 2026A --agent awa --json)
echo "$created"
BATCH=$(echo "$created" | json_field '["batch"]')

step "The lines out of the manifest, and why"
run as awa sika agripme batch held "$BATCH"

step "Awa checked one farmer's papers: the wallet is his wife's. She includes his line, with her reason, and signs the new manifest"
# the first line held for a name mismatch (excluded lines cannot be included)
HELD=$(as awa sika agripme batch held "$BATCH" --json | python -c "
import json, sys
print(next(r['line'] for r in json.load(sys.stdin)['held'] if r['includable']))")
run as awa sika agripme batch include "$BATCH" --line "$HELD" \
    --reason "wallet in his wife's name; checked against his ID card at the cooperative" --agent awa
TOTAL=$(as awa sika agripme batch show "$BATCH" --json | json_field '["total"]')

step "Awa cannot approve her own batch, nor approve it in Kodjo's name"
refused as awa sika agripme batch approve "$BATCH" --agent awa
refused as awa sika agripme batch approve "$BATCH" --agent kodjo
echo "(signing in Kodjo's name with her own key, SIKA_AGENT_KEY, fares no better:)"
refused as awa env SIKA_AGENT_KEY="$PEOPLE/awa/awa.pem" \
    sika agripme batch approve "$BATCH" --agent kodjo

step "Kodjo approves it on his own laptop, with his own key, after reading its pre-flight summary"
echo "(the two lines still held out are left out for good: those farmers stay eligible)"
run as kodjo sika agripme batch approve "$BATCH" --agent kodjo

step "Afi, the treasurer, funds both operator floats (the sandbox's floats follow)"
run as afi sika funds add --operator flooz --amount "$TOTAL" --agent afi --id demo:fund:flooz
run as afi sika funds add --operator tmoney --amount "$TOTAL" --agent afi --id demo:fund:tmoney

step "Dispatch: Awa's and Kodjo's signed requests checked against the lines, the batch reserved in one step, lines sent by workers"
run as kodjo sika agripme batch dispatch "$BATCH" --agent kodjo --wait --timeout 300

if [[ -f scripts/demo_cizo.sh ]]; then
    # shellcheck source=scripts/demo_cizo.sh
    source scripts/demo_cizo.sh
fi

step "Nightly reconciliation of today's statements by Yao, the auditor (normally \`sika scheduler\` at 02:00)"
TODAY=$(python -c "import httpx; print(httpx.get('$SIKA_SANDBOX_URL/_sandbox/clock').json()['now'][:10])")
for operator in flooz tmoney; do
    run as yao sika reconcile run --provider "$operator" --date "$TODAY" --agent yao
done

step "The ledger still balances, and the audit log is intact"
run sika ledger verify
run sika audit log --verify >/dev/null

elapsed=$(( $(date +%s) - started ))
cat <<EOF

Done in ${elapsed}s. The sandbox keeps running at $SIKA_SANDBOX_URL (make demo-stop ends it
and the embedded database). Try next, with SIKA_HOME=$SIKA_HOME SIKA_SANDBOX_URL=$SIKA_SANDBOX_URL
and, to act as Yao the auditor, SIKA_KEYS_DIR=$PEOPLE/yao SIKA_AGENT=yao:
  sika agripme batch show $BATCH --json          what became of each line, by reason
  sika agripme batch held $BATCH                 the lines the pre-flight kept out, and why
  sika agripme batch export $BATCH --out b.csv   one row per line, phone numbers masked
  sika agripme farmers show TG-2016-0000001      a farmer decrypted: a signed, logged look
  sika ledger balance float:flooz                the float, reservations included
  sika reconcile exceptions                      what reconciliation left for an auditor
  sika audit log                                 who did what, each act signed, hash-chained
EOF
