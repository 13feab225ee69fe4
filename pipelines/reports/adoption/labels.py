"""Names the report shows: segments, measures, kinds of information and column headers, Japanese with English."""

from pipelines.fhir.systems import INFORMATION_KINDS

#: facility segments in display order: (code, 日本語, English). A hospital also counts in `hospital`, and every
#: facility in `all`; bed bands follow the 医療施設調査 (200床未満 / 200〜399床 / 400床以上).
SEGMENTS = [
    ("all", "全施設", "All facilities"),
    ("hospital", "病院", "Hospitals"),
    ("hospital_400plus", "病院 400床以上", "Hospitals ≥400 beds"),
    ("hospital_200_399", "病院 200〜399床", "Hospitals 200–399 beds"),
    ("hospital_under200", "病院 200床未満", "Hospitals <200 beds"),
    ("clinic", "一般診療所", "Clinics"),
    ("dental", "歯科診療所", "Dental clinics"),
]
SEGMENT_JA = {code: ja for code, ja, _ in SEGMENTS}
SEGMENT_EN = {code: en for code, _, en in SEGMENTS}
SEGMENT_ORDER = {code: i for i, (code, _, _) in enumerate(SEGMENTS)}

#: the 6 kinds of information and the 3 documents of the service (urn:karte:information-kind codes)
SIX_KINDS = ("condition", "infection", "drug-contraindication", "allergy", "lab-result", "prescription")
THREE_DOCUMENTS = ("referral", "discharge-summary", "checkup")
CATEGORY_JA = dict(INFORMATION_KINDS)

#: measure → (日本語, English, what the denominator counts)
MEASURES = {
    "applied": ("利用申請済", "Applied", "registered facilities"),
    "connected": ("接続済", "Connected", "registered facilities"),
    "sharing": ("送信中 (30日)", "Actively sharing (30 days)", "connected facilities"),
    "viewing": ("閲覧中 (30日)", "Actively viewing (30 days)", "connected facilities"),
    "kind_coverage": ("6情報カバー率", "6-kind coverage", "connected facilities × 6 kinds"),
    "document_coverage": ("3文書カバー率", "3-document coverage", "connected facilities × 3 documents"),
    "quality": ("データ受理率", "Data-quality pass rate", "records received in the month"),
    **{f"sent:{kind}": (f"{CATEGORY_JA[kind]} 送信実績", f"Has sent {kind}", "connected facilities")
       for kind in (*SIX_KINDS, *THREE_DOCUMENTS)},
}

#: column → Japanese header (XLSX sheets and HTML tables); columns not listed keep their own name
COLUMNS_JA = {
    "month": "年月", "snapshot_date": "集計日", "prefecture_code": "都道府県コード", "prefecture_name_ja": "都道府県",
    "prefecture_name_en": "Prefecture", "segment": "区分コード", "segment_ja": "施設区分", "measure": "指標コード",
    "measure_ja": "指標", "numerator": "分子", "denominator": "分母", "rate_pct": "割合(%)",
    "denominator_basis": "分母の定義", "denominator_source": "分母の出典", "denominator_year": "分母の年",
    "denominator_as_of": "分母の時点", "rate_basis": "割合の根拠", "latest_rate_pct": "最新調査の導入率(%)",
    "registered": "登録施設数", "connected": "接続済施設数", "rate_connected_pct": "接続率(%)",
    "target_level_pct": "目標(%)", "target_date": "目標期日", "gap_pp": "目標との差(ポイント)",
    "facilities_short": "目標までの不足施設数", "months_remaining": "残り月数",
    "required_per_month": "必要ペース(施設/月)", "required_pp_per_month": "必要ペース(ポイント/月)",
    "observed_per_month": "実績ペース(施設/月)", "observed_pp_per_month": "実績ペース(ポイント/月)",
    "pace_window_months": "実績ペースの期間(月)", "linear_reach_date": "実績ペースでの到達見込み",
    "projected_reach_date": "ロジスティック予測の到達日", "projected_reach_low": "予測下限(95%)",
    "projected_reach_high": "予測上限(95%)", "status": "判定", "model": "モデル", "rank_by_gap": "差の順位",
    "institution_number": "医療機関番号", "facility_name": "医療機関名称", "facility_type": "施設種別",
    "bed_count": "病床数", "bed_band": "病床規模", "applied_on": "申請日", "connected_on": "接続日",
    "first_submission_on": "初回送信日(実績)", "last_submission_on": "最終送信日(実績)",
    "first_view_on": "初回閲覧日(実績)", "last_view_on": "最終閲覧日(実績)",
    "registry_first_submission_on": "初回送信日(台帳)", "registry_first_view_on": "初回閲覧日(台帳)",
    "is_sharing": "送信中", "is_viewing": "閲覧中", "kinds_sent": "送信済の情報", "kinds_sent_count": "6情報のうち送信済",
    "documents_sent": "送信済の文書", "documents_sent_count": "3文書のうち送信済", "records_received": "受信レコード数",
    "records_passed": "受理レコード数", "pass_rate_pct": "受理率(%)",
    "survey_year": "調査年", "as_of": "調査日", "segment_en": "Segment", "adopters": "導入施設数",
    "facilities": "施設数", "published_rate_pct": "公表値(%)", "computed_rate_pct": "再計算値(%)",
    "reproduces_published": "公表値と一致", "confidence": "確度", "source": "出典",
    "points_used": "使用した調査点数", "fit_years": "当てはめ期間", "projected_rate_pct": "予測導入率(%)",
    "projected_low_pct": "予測下限(%)", "projected_high_pct": "予測上限(%)", "projection_date": "予測時点",
    "reach_year": "目標到達年(予測)", "reach_year_low": "到達年 下限", "reach_year_high": "到達年 上限",
    "key": "項目", "value": "値",
}
