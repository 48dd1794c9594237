"""The emulator's own copy of the service's vocabulary: regulations, namespaces, products, codes.

Kept apart from the client's constants on purpose (DESIGN.md section 8): if both sides read one
table, they would agree with each other instead of with the service.
"""

from __future__ import annotations

from typing import Final

API_PREFIX: Final = "/data/core/privacy"
TOKEN_PATH: Final = "/ims/token/v3"
CONTROL_PREFIX: Final = "/_emulator"

# Regulation values accepted since 12 June 2025 (GET and POST use the same set).
CURRENT_REGULATIONS: Final = frozenset(
    {
        "apa_aus", "ccpa", "cpa_co_usa", "cpra_ca_usa", "ctdpa_ct_usa", "dpdpa_de_usa",
        "fdbr_fl_usa", "gdpr", "hipaa_usa", "icdpa_ia_usa", "lgpd_bra", "mcdpa_mn_usa",
        "mcdpa_mt_usa", "mhmda_wa_usa", "modpa_md_usa", "ndpa_ne_usa", "nhpa_nh_usa",
        "njdpa_nj_usa", "nzpa_nzl", "ocpa_or_usa", "pdpa_tha", "pipa_kor", "ql25_qc_can",
        "tdpsa_tx_usa", "tipa_tn_usa", "ucpa_ut_usa", "vcdpa_va_usa",
    }
)  # fmt: skip

# Values that stopped working after the cutoff, with the value that replaced each.
DEPRECATED_REGULATIONS: Final = {
    "cpra_usa": "cpra_ca_usa",
    "cpa": "cpa_co_usa",
    "cpa_usa": "cpa_co_usa",
    "ctdpa": "ctdpa_ct_usa",
    "ctdpa_usa": "ctdpa_ct_usa",
    "dpdpa": "dpdpa_de_usa",
    "dpdpa_usa": "dpdpa_de_usa",
    "fdbr_usa": "fdbr_fl_usa",
    "icdpa_usa": "icdpa_ia_usa",
    "mcdpa_usa": "mcdpa_mt_usa",
    "mhmda": "mhmda_wa_usa",
    "mhmda_usa": "mhmda_wa_usa",
    "ndpa_usa": "ndpa_ne_usa",
    "nhpa_usa": "nhpa_nh_usa",
    "njdpa_usa": "njdpa_nj_usa",
    "ocpa_usa": "ocpa_or_usa",
    "ql25": "ql25_qc_can",
    "ql25_can": "ql25_qc_can",
    "tdpsa_usa": "tdpsa_tx_usa",
    "ucpa_usa": "ucpa_ut_usa",
    "vcdpa_usa": "vcdpa_va_usa",
}

# Standard identity namespaces (lower-cased) and their numeric namespace ids.
STANDARD_NAMESPACES: Final = {
    "email": 6,
    "phone": 7,
    "adcloud": 411,
    "core": 0,
    "ecid": 4,
    "tntid": 9,
    "idfa": 20915,
    "gaid": 20914,
    "waid": 8,
    "aaid": 10,
}

ID_TYPES: Final = frozenset(
    {"standard", "custom", "integrationCode", "namespaceId", "unregistered", "analytics", "target"}
)

# include code (lower-cased) -> product name as it appears in productResponses.
PRODUCTS: Final = {
    "analytics": "Analytics",
    "audiencemanager": "AudienceManager",
    "adcloud": "AdCloud",
    "profileservice": "Profile",
    "aepdatalake": "AEPDataLake",
    "campaign": "Campaign",
    "target": "Target",
    "crs": "CRS",
    "cjm": "CJM",
    "marketo": "Marketo",
    "identity": "Identity",
    "marketomeasure": "MarketoMeasure",
    "commercemarketingdata": "CommerceMarketingData",
    "primetimeauthentication": "PrimetimeAuthentication",
}

ACTIONS: Final = ("access", "delete")
OPT_OUT_ACTION: Final = "opt-out-of-sale"
ALL_ACTIONS: Final = (*ACTIONS, OPT_OUT_ACTION)
PRIORITIES: Final = frozenset({"normal", "low"})
LIST_STATUSES: Final = frozenset({"submitted", "processing", "complete", "error"})

# Product outcome codes: (responseMsgCode, product status, message, detail).
OUTCOMES: Final = (
    ("PRVCY-6000-200", "complete", "Success", "Finished successfully."),
    ("PRVCY-6051-200", "complete", "Not provisioned", "The organization is not provisioned."),
    ("PRVCY-6052-200", "complete", "User IDs not found", "User IDs were not found."),
    ("PRVCY-6053-200", "complete", "Invalid namespace", "Invalid Namespace."),
    (
        "PRVCY-6054-200",
        "complete",
        "Success",
        "PARTIALLY COMPLETED- Data not found for some requests, check results for more info.",
    ),
    ("PRVCY-1000-400", "error", "Formatting error", "The data is not in the required format."),
    ("PRVCY-1022-400", "error", "Data access failure", "There was a problem accessing data."),
    ("PRVCY-1024-400", "error", "Unexpected error", "An unexpected error occurred."),
)
OUTCOME_INDEX: Final = {code: i for i, (code, *_rest) in enumerate(OUTCOMES)}
SUCCESS: Final = OUTCOME_INDEX["PRVCY-6000-200"]
NOT_PROVISIONED: Final = OUTCOME_INDEX["PRVCY-6051-200"]
IDS_NOT_FOUND: Final = OUTCOME_INDEX["PRVCY-6052-200"]
INVALID_NAMESPACE: Final = OUTCOME_INDEX["PRVCY-6053-200"]
PARTIAL: Final = OUTCOME_INDEX["PRVCY-6054-200"]
ERROR_OUTCOMES: Final = tuple(i for i, o in enumerate(OUTCOMES) if o[1] == "error")
DOCUMENT_RATE_CODE: Final = "PRVCY-1030-400"
