#!/usr/bin/env bash
# A guided tour of Sika's ledger with real `sika` commands on the embedded defaults
# (SIKA_HOME=./.sika, embedded PostgreSQL). Every id is fixed, so a second run replays:
# accounts answer "exists", transfers answer "exists", and nothing moves twice.
set -euo pipefail

export SIKA_HOME="${SIKA_HOME:-./.sika}"
unset SIKA_DATABASE_URL

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "Accounts. float:flooz is the e-money the government holds at Flooz: an asset,"
echo "    so it grows with debits; --limit credits forbids credits (payouts) beyond"
echo "    debits (funding), pending reservations included: the float never goes below zero."
run sika ledger account create float:flooz --kind asset --limit credits
run sika ledger account create treasury:agripme --kind equity
run sika ledger account create agripme:subsidy_expense --kind expense

step "Fund the float with 50 000 FCFA (debit float, credit treasury)."
run sika ledger transfer --id demo:fund:1 --debit float:flooz --credit treasury:agripme --amount 50000

step "Reserve a 9 000 FCFA payout (3 bags at 3 000) as a pending hold, expiring in an hour."
run sika ledger transfer --id demo:payout:1:reserve --debit agripme:subsidy_expense \
    --credit float:flooz --amount 9000 --pending --timeout 3600 --json

step "The operator confirms 6 000 only: post part of the hold; the other 3 000 is released."
run sika ledger post demo:payout:1:reserve --amount 6000 --json
echo "Posting again is a replay (stable id demo:payout:1:reserve:post), not a second post:"
run sika ledger post demo:payout:1:reserve --amount 6000 --json

step "Reserve a second payout, then void it: the operator rejected it."
run sika ledger transfer --id demo:payout:2:reserve --debit agripme:subsidy_expense \
    --credit float:flooz --amount 4000 --pending --json
run sika ledger void demo:payout:2:reserve --json

step "Try to pay 60 000 FCFA from a float holding 44 000: refused (exit 1), nothing moves."
if run sika ledger transfer --id demo:overdraft --debit agripme:subsidy_expense \
    --credit float:flooz --amount 60000 --json; then
    echo "unexpected: the overdraft went through" >&2
    exit 1
fi
echo "(refused as expected)"

step "Balances."
run sika ledger balance float:flooz
run sika ledger balance agripme:subsidy_expense --json

step "Statement of the float."
run sika ledger statement float:flooz

step "Recompute every account from the transfers."
run sika ledger verify

step "Seal yesterday (Lomé time) into the signed hash chain, then verify every seal."
run sika audit seal --json
run sika audit verify

step "Done. Run it again: every step replays and nothing moves twice."
