"""Plausible checkup results for one person: body measurements, blood pressure, lipids, glucose, liver and
kidney tests, urine tests, the questionnaire, and the judgements derived from them (メタボリックシンドローム判定,
保健指導レベル) — by sex, age and the person's chronic conditions.

The distributions are rough shapes of Japanese adults (means and spreads of the 国民健康・栄養調査 kind, not
fitted to any table); what matters for Karte's tests is that they are plausible, deterministic, and that the
judgements follow the published criteria from the values actually written:

- メタボリックシンドローム判定 (table 1008: 1 基準該当, 2 予備群該当, 3 非該当): 腹囲 ≥ 85 cm (男) / 90 cm (女)
  and the count of risks — 脂質 (TG ≥ 150 fasting / ≥ 175 random, or HDL < 40, or 服薬3), 血圧 (≥ 130 / 85, or
  服薬1), 血糖 (空腹時血糖 ≥ 110, HbA1c ≥ 6.0 without one, or 服薬2): 2+ 該当, 1 予備群.
- 保健指導レベル (table 3001: 1 積極的支援, 2 動機付け支援, 3 なし): step 1 腹囲 over the cut-off (A) or BMI ≥ 25
  (B); step 2 risks — 血糖 (空腹時血糖 ≥ 100 or HbA1c ≥ 5.6), 脂質 (TG ≥ 150 / 175 or HDL < 40), 血圧 (≥ 130 / 85),
  喫煙 counted only with another risk; A: 2+ 積極的, 1 動機付け; B: 3+ 積極的, 1–2 動機付け; anyone on
  medication for 血圧・血糖・脂質 is outside 特定保健指導 (3); aged 65+ 積極的 becomes 動機付け.
"""

import math
import random
from dataclasses import dataclass, field

from pipelines.checkups.codes import CHOICE_OID_PREFIX, EMPLOYER_CHECKUP
from pipelines.checkups.items import checkup_items

C = {  # the item codes the generator writes
    "height": "9N001000000000001", "weight": "9N006000000000001", "bmi": "9N011000000000001",
    "waist": "9N016160100000001",
    "sbp1": "9A751000000000001", "dbp1": "9A761000000000001", "sbp2": "9A752000000000001",
    "dbp2": "9A762000000000001",
    "tg_fasting": "3F015000002327101", "tg_random": "3F015129902327101", "hdl": "3F070000002327101",
    "ldl": "3F077000002327101", "ast": "3B035000002327201", "alt": "3B045000002327201", "ggt": "3B090000002327101",
    "fpg": "3D010000002227101", "rpg": "3D010129902227101", "hba1c": "3D046000001906202",
    "creatinine": "3C015000002327101", "egfr": "8A065000002391901",
    "urine_glucose": "1A020000000191111", "urine_protein": "1A010000000191111",
    "blood_timing": "9N141000000000011", "history": "9N056000000000011", "history_text": "9N056160400000049",
    "symptoms": "9N061000000000011", "symptoms_text": "9N061160800000049", "signs": "9N066000000000011",
    "vision_right": "9E160162100000001", "vision_left": "9E160162200000001",
    "med_bp": "9N701000000000011", "med_glucose": "9N706000000000011", "med_lipid": "9N711000000000011",
    "stroke": "9N716000000000011", "heart": "9N721000000000011", "kidney": "9N726000000000011",
    "anemia": "9N731000000000011", "smoking": "9N736000000000011", "weight_gain": "9N741000000000011",
    "exercise": "9N746000000000011", "activity": "9N751000000000011", "walking_speed": "9N756000000000011",
    "chewing": "9N872000000000011", "eating_speed": "9N766000000000011", "late_dinner": "9N771000000000011",
    "snacks": "9N782000000000011", "skip_breakfast": "9N781000000000011", "drinking": "9N786000000000011",
    "drinking_amount": "9N791000000000011", "sleep": "9N796000000000011", "lifestyle": "9N801000000000011",
    "guidance_history": "9N808000000000011", "metabo": "9N501000000000011", "level": "9N506000000000011",
    "diagnosis": "9N511000000000049",
}
#: displays of the choice-table codes written (tables as in the official eCheckupReport sample)
CHOICES = {
    "2001": {"1": "特記事項有り", "2": "特記事項無し"},
    "2003": {"1": "はい", "2": "いいえ"},
    "2004": {"1": "速い", "2": "ふつう", "3": "遅い"},
    "2007": {"1": "改善するつもりはない", "2": "改善するつもりである（概ね6か月以内）",
             "3": "近いうちに（概ね1か月以内）改善するつもりであり、少しずつ始めている",
             "4": "既に改善に取り組んでいる（6か月未満）", "5": "既に改善に取り組んでいる（6か月以上）"},
    "2102": {"1": "－", "2": "±", "3": "＋", "4": "＋＋", "5": "＋＋＋"},
    "2202": {"1": "食後10時間未満", "2": "食後10時間以上"},
    "1008": {"1": "基準該当", "2": "予備群該当", "3": "非該当", "4": "判定不能"},
    "3001": {"1": "積極的支援", "2": "動機付け支援", "3": "なし", "4": "判定不能"},
    "18030": {"1": "何でもかんで食べることができる", "2": "歯や歯ぐき、かみあわせなど気になる部分があり、かみにくいことがある",
              "3": "ほとんどかめない"},
    "18040": {"1": "毎日", "2": "時々", "3": "ほとんど摂取しない"},
    "24040": {"1": "毎日", "2": "週5～6日", "3": "週3～4日", "4": "週1～2日", "5": "月に1～3日", "6": "月に1日未満",
              "7": "やめた", "8": "飲まない（飲めない）"},
    "24050": {"1": "1合未満", "2": "1～2合未満", "3": "2～3合未満", "4": "3～5合未満", "5": "5合以上"},
    "24060": {"1": "はい", "2": "以前は吸っていたが、最近1か月間は吸っていない", "3": "いいえ"},
}
BP_GROUPS = {"sbp1": "血圧1回目", "dbp1": "血圧1回目", "sbp2": "血圧2回目", "dbp2": "血圧2回目"}
HX_GGT_SHARE = 0.004  # γ-GT beyond the measurable range: written as the limit, flagged HX
DIAGNOSES = ["異常なし", "軽度異常あり、生活習慣に注意してください。", "要経過観察", "要精密検査", "要治療",
             "肝機能がわずかに異常ですが支障はないと思われます。"]


@dataclass
class ItemValue:
    code: str
    value_type: str  # PQ / CD / CO / ST
    number: float | None = None
    unit: str | None = None
    choice: str | None = None  # CD / CO code
    choice_table: str | None = None  # urn:oid:1.2.392.200119.6.xxxx
    display: str | None = None
    text: str | None = None
    interpretation: str | None = None
    parent: str | None = None  # item code this one is carried under (FHIR component / CDA entryRelationship)
    group: str | None = None  # 一連検査グループ (CDA organizer), e.g. 血圧1回目

    @property
    def name(self) -> str:
        return checkup_items()[self.code].name if self.code in checkup_items() else self.code


@dataclass
class Results:
    items: list[ItemValue] = field(default_factory=list)
    metabo: str | None = None  # 1008 code
    level: str | None = None  # 3001 code

    def get(self, key: str) -> ItemValue | None:
        code = C[key]
        return next((i for i in self.items if i.code == code), None)


@dataclass(frozen=True)
class Person:
    sex: str  # male | female
    age: int
    hypertension: bool
    diabetes: bool
    dyslipidemia: bool
    ckd: bool
    heart: bool
    history: tuple[str, ...]  # names of chronic conditions (既往歴 text)


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def _pq(key: str, value: float, digits: int, interpretation: str | None = None) -> ItemValue:
    code = C[key]
    number = round(value, digits) if digits else float(round(value))
    return ItemValue(code, "PQ", number=number, unit=checkup_items()[code].unit, interpretation=interpretation,
                     group=BP_GROUPS.get(key))


def _coded(key: str, table: str, choice: str) -> ItemValue:
    code = C[key]
    vt = checkup_items()[code].value_type
    return ItemValue(code, vt, choice=choice, choice_table=f"urn:oid:{CHOICE_OID_PREFIX}{table}",
                     display=CHOICES[table][choice])


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()), k=1)[0]


def _yes(rng: random.Random, p: float) -> str:
    return "1" if rng.random() < p else "2"


def _hl(high: bool = False, low: bool = False) -> str:
    return "H" if high else "L" if low else "N"


def measurements(rng: random.Random, p: Person, full: bool) -> tuple[Results, dict]:
    """The measured items; returns the results and the values the judgements need."""
    male, a = p.sex == "male", p.age
    height = _clamp(rng.gauss(171.5 - 0.2 * (a - 40), 5.8) if male else rng.gauss(158.5 - 0.17 * (a - 40), 5.3),
                    135, 200)
    bmi_true = _clamp(rng.gauss(24.0, 3.4) if male else rng.gauss(22.3 + 0.03 * (a - 40), 3.6), 15.5, 42)
    height = round(height, 1)
    weight = round(bmi_true * (height / 100) ** 2, 1)
    bmi = round(weight / (height / 100) ** 2, 1)
    waist = round(_clamp((2.6 * bmi + 21 if male else 2.5 * bmi + 23) + rng.gauss(0, 3.5), 55, 150), 1)
    sbp = _clamp(112 + 0.55 * (a - 40) + 1.3 * (bmi - 23) + (8 if male else 0) + (12 if p.hypertension else 0)
                 + rng.gauss(0, 13), 90, 200)
    dbp = _clamp(0.55 * sbp + 6 + rng.gauss(0, 7), 60, sbp - 20)
    sbp, dbp = round(sbp), round(dbp)
    fasting = rng.random() < 0.85
    if p.diabetes:
        hba1c = _clamp(rng.gauss(7.2, 0.9), 5.8, 12.0)
    else:
        hba1c = _clamp(5.3 + 0.012 * (a - 40) + 0.04 * (bmi - 23) + rng.gauss(0, 0.3), 4.3, 6.4)
    hba1c = round(hba1c, 1)
    glucose = round(_clamp(28.7 * hba1c - 46.7 + rng.gauss(0, 8) + (0 if fasting else 25), 60, 400))
    tg = round(_clamp(math.exp(rng.gauss(math.log(95) + 0.05 * (bmi - 23) + (0.15 if male else 0), 0.45)), 30, 1500))
    hdl = round(_clamp(rng.gauss(54 - 1.0 * (bmi - 23), 12) if male else rng.gauss(66 - 1.2 * (bmi - 23), 14), 25, 120))
    ldl = round(_clamp(rng.gauss(115, 25) if p.dyslipidemia else rng.gauss(118 + 0.3 * (a - 40), 30), 40, 260))
    ast = round(_clamp(rng.gauss(21 + 0.3 * (bmi - 23), 6), 8, 150))
    alt = round(_clamp(rng.gauss(19 + 1.2 * (bmi - 23) + (5 if male else 0), 9), 5, 200))
    ggt = round(_clamp(math.exp(rng.gauss(math.log(32 if male else 18), 0.6)), 5, 900))
    r = Results()
    add = r.items.append
    add(_pq("height", height, 1))
    add(_pq("weight", weight, 1))
    add(_pq("bmi", bmi, 1))
    add(_pq("waist", waist, 1))
    add(_pq("sbp1", sbp, 0, _hl(sbp >= 130)))
    add(_pq("dbp1", dbp, 0, _hl(dbp >= 85)))
    if full and rng.random() < 0.7:
        sbp2 = round(_clamp(sbp - 3 + rng.gauss(0, 4), 90, 200))
        dbp2 = round(_clamp(dbp - 1 + rng.gauss(0, 3), 60, sbp2 - 20))
        add(_pq("sbp2", sbp2, 0, _hl(sbp2 >= 130)))
        add(_pq("dbp2", dbp2, 0, _hl(dbp2 >= 85)))
    add(_pq("tg_fasting" if fasting else "tg_random", tg, 0, _hl(tg >= (150 if fasting else 175))))
    add(_pq("hdl", hdl, 0, _hl(low=hdl < 40)))
    add(_pq("ldl", ldl, 0, _hl(ldl >= 140)))
    add(_pq("ast", ast, 0, _hl(ast > 30)))
    add(_pq("alt", alt, 0, _hl(alt > 30)))
    if rng.random() < HX_GGT_SHARE:
        add(_pq("ggt", checkup_items()[C["ggt"]].input_max, 0, "HX"))
    else:
        add(_pq("ggt", ggt, 0, _hl(ggt > 50)))
    add(_pq("fpg" if fasting else "rpg", glucose, 0, _hl(glucose >= (100 if fasting else 140))))
    if full or rng.random() < 0.6:
        add(_pq("hba1c", hba1c, 1, _hl(hba1c >= 5.6)))
    if full and rng.random() < 0.5:  # 詳細健診: serum creatinine and eGFR
        cr = _clamp(rng.gauss(0.88 + 0.003 * (a - 40), 0.13) if male else rng.gauss(0.65 + 0.002 * (a - 40), 0.1),
                    0.4, 3.0) * (1.6 if p.ckd else 1.0)
        cr = round(cr, 2)
        egfr = 194 * cr ** -1.094 * a ** -0.287 * (1 if male else 0.739)
        add(_pq("creatinine", cr, 2, _hl(cr > (1.0 if male else 0.7))))
        add(_pq("egfr", egfr, 1, _hl(low=egfr < 60)))
    u_glucose = _pick(rng, {"1": 60, "3": 40}) if p.diabetes and hba1c >= 7.5 else _pick(rng, {"1": 97, "2": 2, "3": 1})
    u_protein = _pick(rng, {"1": 60, "2": 20, "3": 15, "4": 5} if p.ckd else {"1": 90, "2": 6, "3": 3, "4": 1})
    add(_coded("urine_glucose", "2102", u_glucose))
    add(_coded("urine_protein", "2102", u_protein))
    add(_coded("blood_timing", "2202", "2" if fasting else "1"))
    facts = {"waist": waist, "bmi": bmi, "sbp": sbp, "dbp": dbp, "fasting": fasting, "tg": tg, "hdl": hdl,
             "glucose": glucose, "hba1c": hba1c if any(i.code == C["hba1c"] for i in r.items) else None}
    return r, facts


def questionnaire(rng: random.Random, p: Person, r: Results) -> dict:
    """The 問診 items of 特定健診 (第4期); returns the answers the judgements need."""
    add = r.items.append
    male = p.sex == "male"
    meds = {"bp": _yes(rng, 0.9 if p.hypertension else 0.0), "glucose": _yes(rng, 0.85 if p.diabetes else 0.0),
            "lipid": _yes(rng, 0.8 if p.dyslipidemia else 0.0)}
    add(_coded("med_bp", "2003", meds["bp"]))
    add(_coded("med_glucose", "2003", meds["glucose"]))
    add(_coded("med_lipid", "2003", meds["lipid"]))
    add(_coded("stroke", "2003", _yes(rng, 0.03)))
    add(_coded("heart", "2003", "1" if p.heart else _yes(rng, 0.02)))
    add(_coded("kidney", "2003", _yes(rng, 0.3 if p.ckd else 0.005)))
    add(_coded("anemia", "2003", _yes(rng, 0.03 if male else 0.1)))
    smoking = _pick(rng, {"1": 27, "2": 20, "3": 53} if male else {"1": 8, "2": 7, "3": 85})
    add(_coded("smoking", "24060", smoking))
    bmi = r.get("bmi").number
    add(_coded("weight_gain", "2003", _yes(rng, 0.65 if bmi >= 25 else 0.2)))
    add(_coded("exercise", "2003", _yes(rng, 0.3)))
    add(_coded("activity", "2003", _yes(rng, 0.5)))
    add(_coded("walking_speed", "2003", _yes(rng, 0.5)))
    add(_coded("chewing", "18030", _pick(rng, {"1": 80, "2": 18, "3": 2})))
    add(_coded("eating_speed", "2004", _pick(rng, {"1": 30, "2": 60, "3": 10})))
    add(_coded("late_dinner", "2003", _yes(rng, 0.2)))
    add(_coded("snacks", "18040", _pick(rng, {"1": 25, "2": 55, "3": 20})))
    add(_coded("skip_breakfast", "2003", _yes(rng, 0.15)))
    drinking = _pick(rng, {"1": 25, "2": 6, "3": 8, "4": 10, "5": 10, "6": 6, "7": 5, "8": 30} if male
                     else {"1": 8, "2": 3, "3": 5, "4": 8, "5": 12, "6": 10, "7": 4, "8": 50})
    add(_coded("drinking", "24040", drinking))
    if drinking not in ("7", "8"):
        add(_coded("drinking_amount", "24050", _pick(rng, {"1": 40, "2": 35, "3": 17, "4": 6, "5": 2})))
    add(_coded("sleep", "2003", _yes(rng, 0.7)))
    add(_coded("lifestyle", "2007", _pick(rng, {"1": 30, "2": 30, "3": 15, "4": 10, "5": 15})))
    add(_coded("guidance_history", "2003", _yes(rng, 0.25)))
    return {"meds": meds, "smoker": smoking == "1"}


def _history(rng: random.Random, p: Person, r: Results) -> None:
    add = r.items.append
    has_history = bool(p.history)
    add(_coded("history", "2001", "1" if has_history else "2"))
    if has_history:
        add(ItemValue(C["history_text"], "ST", text="、".join(p.history), parent=C["history"]))
    symptoms = rng.random() < 0.1
    add(_coded("symptoms", "2001", "1" if symptoms else "2"))
    if symptoms:
        add(ItemValue(C["symptoms_text"], "ST", text=rng.choice(["胃痛", "頭痛", "腰痛", "肩こり", "動悸"]),
                      parent=C["symptoms"]))
    add(_coded("signs", "2001", "2" if rng.random() < 0.95 else "1"))


def judge(facts: dict, answers: dict, sex: str, age: int) -> tuple[str, str]:
    """(メタボリックシンドローム判定 1008 code, 保健指導レベル 3001 code) by the criteria in the module docstring."""
    meds = answers["meds"]
    over_waist = facts["waist"] >= (85 if sex == "male" else 90)
    tg_high = facts["tg"] >= (150 if facts["fasting"] else 175)
    hdl_low = facts["hdl"] < 40
    bp_high = facts["sbp"] >= 130 or facts["dbp"] >= 85
    glucose, hba1c = facts["glucose"], facts["hba1c"]
    metabo_risks = [
        tg_high or hdl_low or meds["lipid"] == "1",
        bp_high or meds["bp"] == "1",
        (glucose >= 110 if facts["fasting"] else (hba1c or 0) >= 6.0) or meds["glucose"] == "1",
    ]
    n = sum(metabo_risks)
    metabo = "3" if not over_waist or n == 0 else "1" if n >= 2 else "2"
    guidance_risks = [
        (facts["fasting"] and glucose >= 100) or (hba1c is not None and hba1c >= 5.6),
        tg_high or hdl_low,
        bp_high,
    ]
    risks = sum(guidance_risks)
    risks += 1 if answers["smoker"] and risks >= 1 else 0
    if any(m == "1" for m in meds.values()):
        level = "3"
    elif over_waist:
        level = "1" if risks >= 2 else "2" if risks == 1 else "3"
    elif facts["bmi"] >= 25:
        level = "1" if risks >= 3 else "2" if risks >= 1 else "3"
    else:
        level = "3"
    if level == "1" and age >= 65:
        level = "2"
    return metabo, level


def make_results(rng: random.Random, p: Person, program: str) -> Results:
    """Every item one checkup writes, in the order a sender lists them."""
    employer = program == EMPLOYER_CHECKUP
    r, facts = measurements(rng, p, full=not employer)
    _history(rng, p, r)
    if employer:
        for key in ("vision_right", "vision_left"):
            acuity = float(_pick(rng, {"1.5": 25, "1.2": 30, "1.0": 25, "0.7": 12, "0.4": 8}))
            r.items.append(_pq(key, acuity, 1))
        meds = {"bp": _yes(rng, 0.9 if p.hypertension else 0), "glucose": _yes(rng, 0.85 if p.diabetes else 0),
                "lipid": _yes(rng, 0.8 if p.dyslipidemia else 0)}
        for key, m in (("med_bp", "bp"), ("med_glucose", "glucose"), ("med_lipid", "lipid")):
            r.items.append(_coded(key, "2003", meds[m]))
        r.items.append(_coded("smoking", "24060", _pick(rng, {"1": 25, "2": 15, "3": 60})))
    else:
        answers = questionnaire(rng, p, r)
        r.metabo, r.level = judge(facts, answers, p.sex, p.age)
        r.items.append(_coded("metabo", "1008", r.metabo))
        r.items.append(_coded("level", "3001", r.level))
    diagnosis = DIAGNOSES[0] if rng.random() < 0.4 else rng.choice(DIAGNOSES[1:])
    r.items.append(ItemValue(C["diagnosis"], "ST", text=diagnosis))
    return r
