#!/usr/bin/env python3
"""Writes benches/policies/fusionauth.yaml: a FusionAuth-like Intercept v1 policy.

The FusionAuth MCP server exposes 310 tools named after FusionAuth's API
(createUser, retrieveTenant, searchEntities, importRefreshTokensWithId, ...).
This script derives 310 such names from verbs x FusionAuth entities and gives
them a realistic mix of rules, so the decision benchmark (benches/decision.rs)
measures a policy of the size a real deployment would have:

- every delete* tool is denied outright;
- import* tools are rate limited (30/minute);
- about 40 tools bound a numeric argument (page sizes, row offsets, TTLs);
- about 20 tools match an argument against a regex (e-mail domain, UUIDs);
- about 10 tools restrict an argument to a list of values;
- sendEmail carries a daily cap on recipients (a state counter, increment_from);
- a few sensitive tools are hidden;
- a global "*" rule limits every call to 6000/minute.

The policy is an allow-list (`default: deny`): all 310 tools are listed under
`tools:` (tools without rules with `rules: []`), so a tool the server does not
have is refused.

Deterministic, standard library only. Run from anywhere:
    python3 benches/gen_fusionauth.py
"""

import os

TOOL_COUNT = 310

UUID = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
EMAIL = "^[^@]+@example\\.com$"

# Entities with the full create/retrieve/update/patch/delete family, a plural
# retrieve and (when FusionAuth has one) a search.
CRUD = [
    # (entity, verbs): c=create r=retrieve u=update p=patch d=delete
    # l=retrieve all (plural) s=search (plural)
    ("User", "crupds"),
    ("Application", "crupdls"),
    ("Tenant", "crupdls"),
    ("Group", "crupdls"),
    ("Entity", "crupds"),
    ("EntityType", "crupdls"),
    ("Webhook", "crupdls"),
    ("Theme", "crupdls"),
    ("Lambda", "crupdls"),
    ("Key", "crupdls"),
    ("Consent", "crupdls"),
    ("Form", "crupdl"),
    ("FormField", "crupdl"),
    ("IdentityProvider", "crupdls"),
    ("EmailTemplate", "crupdls"),
    ("MessageTemplate", "crupdls"),
    ("Messenger", "crupdl"),
    ("Connector", "crupdl"),
    ("APIKey", "crupds"),
    ("IPAccessControlList", "crupds"),
    ("UserAction", "crupdl"),
    ("UserActionReason", "crupdl"),
    ("Family", "crupdl"),
    ("Registration", "crupd"),
    ("UserComment", "cruds"),
    ("GroupMember", "cuds"),
    ("EntityGrant", "crudls"),
    ("UserConsent", "crupl"),
    ("ApplicationRole", "crupd"),
    ("EntityTypePermission", "crupd"),
    ("WebAuthnCredential", "rdl"),
    ("SystemConfiguration", "rup"),
    ("Integration", "rup"),
    ("Reactor", "rup"),
]

# Verbs that only some entities have, in FusionAuth's naming.
EXTRA = [
    # Users and their lifecycle.
    "importUsers", "importRefreshTokens", "importRefreshTokensWithId", "importKey",
    "importWebAuthnCredential", "retrieveUserByEmail", "retrieveUserByLoginId",
    "retrieveUserByUsername", "retrieveUserByVerificationId", "retrieveUserInfoFromAccessToken",
    "retrieveUserComments", "retrieveUserLink", "retrieveUserLoginReport",
    "retrieveUserRecentLogins", "deactivateUser", "deactivateUsersByIds", "reactivateUser",
    "verifyEmailAddress", "resendEmailVerification", "verifyRegistration",
    "resendRegistrationVerification", "changePassword", "checkChangePasswordUsingId",
    "forgotPassword", "actionUser", "cancelAction", "modifyAction", "commentOnUser",
    "searchUsersByQuery", "deleteUsersByQuery", "deleteUserWithRequest", "deleteUserLink",
    "deleteTenantAsync",
    # Sessions, tokens and JWTs.
    "login", "loginPing", "logout", "exchangeRefreshTokenForJWT",
    "exchangeOAuthCodeForAccessToken", "exchangeOAuthCodeForAccessTokenUsingPKCE",
    "exchangeUserCredentialsForAccessToken", "clientCredentialsGrant", "issueJWT",
    "validateJWT", "reconcileJWT", "vendJWT", "retrieveJWTPublicKey",
    "retrieveJWTPublicKeyByApplicationId", "retrieveRefreshTokens", "retrieveRefreshTokenById",
    "revokeRefreshToken", "revokeRefreshTokensByUserId", "revokeRefreshTokensByApplicationId",
    "introspectAccessToken",
    # Multi-factor, passwordless and federated login.
    "enableTwoFactor", "disableTwoFactor", "generateTwoFactorSecret",
    "generateTwoFactorRecoveryCodes", "retrieveTwoFactorRecoveryCodes", "retrieveTwoFactorStatus",
    "sendTwoFactorCodeForEnableDisable", "sendTwoFactorCodeForLogin", "startTwoFactorLogin",
    "twoFactorLogin", "sendPasswordlessCode", "startPasswordlessLogin", "passwordlessLogin",
    "startWebAuthnLogin", "completeWebAuthnLogin", "startWebAuthnRegistration",
    "completeWebAuthnRegistration", "startIdentityProviderLogin", "identityProviderLogin",
    "lookupIdentityProvider",
    # Messaging, families, identity-provider links.
    "sendEmail", "sendFamilyRequestEmail", "retrieveEmailTemplatePreview",
    "retrieveMessageTemplatePreview", "addUserToFamily", "removeUserFromFamily",
    "retrieveFamilyMembersByFamilyId", "retrievePendingChildren", "retrieveIdentityProviderLink",
    "retrieveIdentityProviderByType",
    # Reports and logs.
    "retrieveDailyActiveReport", "retrieveMonthlyActiveReport", "retrieveLoginReport",
    "retrieveRegistrationReport", "retrieveTotalReport", "searchAuditLogs", "searchEventLogs",
    "searchLoginRecords", "retrieveAuditLog", "retrieveEventLog", "createAuditLog",
    "retrieveRecentLogins", "retrieveSystemHealth", "retrieveSystemStatus", "retrieveVersion",
    "exportLoginRecords", "exportAuditLogs", "retrieveWebhookAttemptLog",
    "retrieveWebhookEventLog", "searchWebhookEventLogs",
    # Keys, password rules, actions, configuration.
    "generateKey", "retrievePasswordValidationRules",
    "retrievePasswordValidationRulesWithTenantId", "retrieveLambdasByType",
    "retrieveActiveActions", "retrieveInactiveActions", "retrievePreviousActions",
    "retrieveReactorMetrics", "regenerateReactorKeys", "retrieveKafkaConfiguration",
]

VERBS = {
    "c": "create",
    "r": "retrieve",
    "u": "update",
    "p": "patch",
    "d": "delete",
    "l": "retrieve",
    "s": "search",
}


def plural(entity):
    if entity.endswith("y") and not entity.endswith("ey"):
        return entity[:-1] + "ies"
    if entity.endswith(("s", "x")):
        return entity + "es"
    return entity + "s"


def tool_names():
    names = []
    seen = set()

    def add(n):
        if n not in seen:
            seen.add(n)
            names.append(n)

    for entity, verbs in CRUD:
        for flag in verbs:
            verb = VERBS[flag]
            add(verb + (plural(entity) if flag in "ls" else entity))
    for n in EXTRA:
        assert n not in seen, f"{n} is listed twice"
        add(n)
    assert len(names) == TOOL_COUNT, f"{len(names)} tool names, not {TOOL_COUNT}"
    return names


def q(s):
    """A YAML double-quoted scalar."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cond(path, op, value):
    if isinstance(value, list):
        v = "[" + ", ".join(q(x) if isinstance(x, str) else str(x) for x in value) + "]"
    elif isinstance(value, str):
        v = q(value)
    else:
        v = str(value)
    return {"path": path, "op": op, "value": v}


def rule(name, on_deny, conditions=None, action=None, rate_limit=None, state=None):
    return {
        "name": name,
        "action": action,
        "rate_limit": rate_limit,
        "conditions": conditions or [],
        "on_deny": on_deny,
        "state": state,
    }


def build_rules(names):
    rules = {n: [] for n in names}
    present = set(names)

    def pick(candidates):
        missing = [c for c in candidates if c not in present]
        assert not missing, f"not a tool: {missing}"
        return candidates

    hidden = pick(
        ["createAPIKey", "retrieveAPIKey", "updateSystemConfiguration", "patchSystemConfiguration",
         "retrieveKafkaConfiguration"]
    )

    # Every delete* tool: denied.
    for n in names:
        if n.startswith("delete") and n not in hidden:
            rules[n].append(
                rule(
                    "block deletion",
                    f"{n} is destructive and is not permitted via AI agents",
                    action="deny",
                )
            )

    # import*: rate limited.
    for n in names:
        if n.startswith("import"):
            rules[n].append(
                rule("import rate limit", f"At most 30 {n} calls per minute", rate_limit="30/minute")
            )

    # Numeric bounds (~40 tools).
    numeric = 0
    for n in names:
        if n.startswith("search") and n not in hidden:
            rules[n].append(
                rule(
                    "bounded page size",
                    "Searches return at most 100 results per page",
                    conditions=[cond("args.numberOfResults", "lte", 100)],
                )
            )
            numeric += 1
    for n in pick(["retrieveRecentLogins", "retrieveUserRecentLogins", "retrieveAuditLog",
                   "retrieveEventLog", "retrieveWebhookEventLog", "retrieveWebhookAttemptLog",
                   "exportLoginRecords", "exportAuditLogs"]):
        rules[n].append(
            rule(
                "bounded window",
                "At most 500 records, from offset 0 up to 100000",
                conditions=[cond("args.limit", "lte", 500), cond("args.offset", "gte", 0),
                            cond("args.offset", "lt", 100000)],
            )
        )
        numeric += 1
    for n in pick(["retrieveDailyActiveReport", "retrieveMonthlyActiveReport",
                   "retrieveLoginReport", "retrieveRegistrationReport", "retrieveUserLoginReport",
                   "retrieveTotalReport"]):
        rules[n].append(
            rule(
                "report range",
                "Reports cover at most 90 days",
                conditions=[cond("args.end", "gt", 0), cond("args.days", "lte", 90)],
            )
        )
        numeric += 1
    for n in pick(["issueJWT", "vendJWT", "generateTwoFactorRecoveryCodes", "actionUser"]):
        rules[n].append(
            rule(
                "short lived",
                "Lifetimes are capped at one hour",
                conditions=[cond("args.timeToLiveInSeconds", "lte", 3600)],
            )
        )
        numeric += 1
    assert 35 <= numeric <= 45, numeric

    # Regex conditions (~20 tools).
    regex = 0
    for n in pick(["createUser", "updateUser", "patchUser", "retrieveUserByEmail",
                   "forgotPassword", "sendFamilyRequestEmail", "sendPasswordlessCode",
                   "resendEmailVerification"]):
        rules[n].append(
            rule(
                "company addresses only",
                "Only @example.com accounts may be managed by agents",
                conditions=[cond("args.email", "regex", EMAIL)],
            )
        )
        regex += 1
    for n in pick(["retrieveApplication", "updateApplication", "patchApplication",
                   "retrieveJWTPublicKeyByApplicationId", "revokeRefreshTokensByApplicationId",
                   "createApplicationRole", "updateApplicationRole", "retrieveRegistration",
                   "createRegistration", "updateRegistration", "patchRegistration"]):
        rules[n].append(
            rule(
                "application id is a UUID",
                "applicationId must be a UUID",
                conditions=[cond("args.applicationId", "regex", UUID)],
            )
        )
        regex += 1
    for n in pick(["retrieveTenant", "updateTenant", "patchTenant"]):
        rules[n].append(
            rule(
                "tenant id is a UUID",
                "tenantId must be a UUID",
                conditions=[cond("args.tenantId", "regex", UUID)],
            )
        )
        regex += 1
    assert 18 <= regex <= 24, regex

    # `in` lists (~10 tools).
    lists = [
        ("createKey", "args.algorithm", ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]),
        ("generateKey", "args.algorithm", ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]),
        ("createLambda", "args.type", ["JWTPopulate", "OpenIDReconcile", "SAMLv2Reconcile",
                                       "SAMLv2Populate", "LDAPConnectorReconcile"]),
        ("createIdentityProvider", "args.type", ["OpenIDConnect", "SAMLv2", "Google", "Apple",
                                                 "Facebook", "Twitter", "LinkedIn"]),
        ("createConnector", "args.type", ["LDAP", "Generic"]),
        ("createMessenger", "args.type", ["Generic", "Kafka", "Twilio"]),
        ("createForm", "args.type", ["registration", "adminRegistration", "adminUser",
                                     "selfServiceUser"]),
        ("createFormField", "args.control", ["text", "number", "password", "select", "checkbox",
                                             "radio", "textarea"]),
        ("sendTwoFactorCodeForEnableDisable", "args.method", ["email", "sms"]),
        ("createWebhook", "args.eventType", ["user.create", "user.update", "user.login.success",
                                             "user.registration.create", "jwt.refresh"]),
        ("createTheme", "args.locale", ["en", "de", "fr", "es", "ja"]),
    ]
    in_count = 0
    for n, path, values in lists:
        assert n in present and n not in hidden, n
        rules[n].append(
            rule(
                "allowed values",
                f"{path[5:]} must be one of: {', '.join(values)}",
                conditions=[cond(path, "in", values)],
            )
        )
        in_count += 1
    assert 8 <= in_count <= 12, in_count

    # A spend-cap-like counter: recipients e-mailed per day.
    assert "sendEmail" in present
    rules["sendEmail"].append(
        rule(
            "daily recipient cap",
            "At most 10000 e-mail recipients per day",
            conditions=[cond("state.sendEmail.daily_recipients", "lte", 10000)],
            state={"counter": "daily_recipients", "window": "day",
                   "increment_from": "args.recipientCount"},
        )
    )
    build_rules.counts = {"numeric": numeric, "regex": regex, "in": in_count}
    return rules, hidden


def render(names, rules, hidden):
    out = []
    w = out.append
    w("# GENERATED by benches/gen_fusionauth.py; do not edit by hand.")
    w("# A FusionAuth-like policy: 310 tools named after FusionAuth's API, for the")
    w("# decision benchmark (benches/decision.rs).")
    w('version: "1"')
    w('description: "FusionAuth MCP server (310 tools): benchmark policy"')
    w("default: deny")
    w("")
    w("hide:")
    for n in hidden:
        w(f"  - {n}")
    w("")
    w("tools:")
    for n in names:
        rs = rules[n]
        if not rs:
            w(f"  {n}:")
            w("    rules: []" + ("  # hidden above" if n in hidden else ""))
            continue
        w(f"  {n}:")
        w("    rules:")
        for r in rs:
            w(f"      - name: {q(r['name'])}")
            if r["action"]:
                w(f"        action: {r['action']}")
            if r["rate_limit"]:
                w(f"        rate_limit: {r['rate_limit']}")
            if r["conditions"]:
                w("        conditions:")
                for c in r["conditions"]:
                    w(f"          - path: {q(c['path'])}")
                    w(f"            op: {c['op']}")
                    w(f"            value: {c['value']}")
            if r["state"]:
                w("        state:")
                for k, v in r["state"].items():
                    w(f"          {k}: {q(v)}")
            w(f"        on_deny: {q(r['on_deny'])}")
    w('  "*":')
    w("    rules:")
    w('      - name: "global rate limit"')
    w("        rate_limit: 6000/minute")
    w('        on_deny: "At most 6000 FusionAuth calls per minute"')
    return "\n".join(out) + "\n"


def main():
    names = tool_names()
    rules, hidden = build_rules(names)
    for h in hidden:
        assert not rules[h], f"hidden tool {h} has rules"
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "policies", "fusionauth.yaml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(render(names, rules, hidden))
    counts = {
        "tools": len(names),
        "with rules": sum(1 for n in names if rules[n]),
        "delete (deny)": sum(1 for n in names if n.startswith("delete")),
        "import (rate limited)": sum(1 for n in names if n.startswith("import")),
        "hidden": len(hidden),
        **{f"{k} conditions": v for k, v in build_rules.counts.items()},
    }
    print(f"wrote {os.path.relpath(path)}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
