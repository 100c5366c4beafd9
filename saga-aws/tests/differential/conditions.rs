//! The corpus cases of every condition form (`condition-forms-on-*.json`): one saga of
//! retriable steps, each but the first behind one form, run on three inputs. Agreement alone
//! would pass two engines that misread a form alike, so the steps each input runs are written
//! here, from the language's documented meaning: a comparison is false when its field is
//! missing or holds another type, `!=` is its negation, `== null` needs the field.

use saga_aws::testing::conformance::Run;
use saga_core::Action;

/// Each case, and the conditional steps it runs (every step is retriable; `always` has no
/// condition and runs in all three).
const EXPECTED: [(&str, &[&str]); 3] = [
    (
        // {"coupon": null, "tier": "silver", "gift": false, "boxes": 2, "weight": 1}
        "condition-forms-on-values.json",
        &[
            "coupon_null",
            "tier_not_gold",
            "no_gift",
            "few_boxes",
            "not_heavy",
        ],
    ),
    (
        // {"coupon": "X10", "tier": "gold", "gift": true, "boxes": 3, "weight": 2.5,
        //  "address": {"city": "Oslo"}}
        "condition-forms-on-other-values.json",
        &["many_boxes", "heavy", "weight_not_one", "in_oslo"],
    ),
    (
        // {"tier": 1, "gift": "yes", "boxes": "2", "address": "Oslo"}: no coupon, no weight,
        // no city under an address that is a string.
        "condition-forms-on-wrong-types-and-missing-fields.json",
        &[
            "tier_not_gold",
            "tier_is_one",
            "gift_is_yes",
            "boxes_is_text",
            "not_heavy",
            "weight_not_one",
        ],
    ),
];

/// Checks, on every engine's run of each case (`runs`), that the saga completed having
/// executed exactly `always` and the steps whose condition holds, in declaration order.
pub(crate) fn check_condition_forms<'a>(runs: impl Fn(&str) -> [&'a Run; 3]) {
    for (case, conditional) in EXPECTED {
        let expected: Vec<(String, Action)> = std::iter::once("always")
            .chain(conditional.iter().copied())
            .map(|step| (step.to_owned(), Action::Execute))
            .collect();
        for run in runs(case) {
            assert_eq!(run.outcome.name(), "Completed", "{case}: {:?}", run.outcome);
            assert_eq!(run.applied, expected, "{case}: the steps that ran");
        }
    }
}
