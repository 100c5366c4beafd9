use saga::{saga, StepContext, StepError};

// `branch` without `group`: the error says to add the group.
struct BranchWithoutGroup;

#[saga]
impl BranchWithoutGroup {
    #[compensable(compensate = undo_flight, branch = "air")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel)]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// `car` is in `bookings`, but `insurance` stands between it and the group.
struct GroupNotContiguous;

#[saga]
impl GroupNotContiguous {
    #[compensable(compensate = undo_flight, group = "bookings")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "bookings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_insurance)]
    async fn insurance(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_insurance(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_car, group = "bookings")]
    async fn car(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_car(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// The group and the step would be two states of one name.
struct GroupNamedLikeAStep;

#[saga]
impl GroupNamedLikeAStep {
    #[compensable(compensate = undo_flight, group = "flight")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "flight")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// Both steps in branch `air`: nothing runs in parallel.
struct GroupOfOneBranch;

#[saga]
impl GroupOfOneBranch {
    #[compensable(compensate = undo_flight, group = "bookings", branch = "air")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_seat, group = "bookings", branch = "air")]
    async fn seat(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_seat(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// Branch `air` is interrupted by branch `hotel`.
struct BranchNotContiguous;

#[saga]
impl BranchNotContiguous {
    #[compensable(compensate = undo_flight, group = "bookings", branch = "air")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "bookings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_seat, group = "bookings", branch = "air")]
    async fn seat(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_seat(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// The pivot races the bookings.
struct PivotInGroup;

#[saga]
impl PivotInGroup {
    #[compensable(compensate = undo_flight, group = "bookings")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "bookings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot(group = "bookings")]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable]
    async fn notify(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// No pivot: a compensable and a retriable step in one group.
struct GroupMixesKinds;

#[saga]
impl GroupMixesKinds {
    #[compensable(compensate = undo_flight, group = "bookings")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[retriable(group = "bookings")]
    async fn notify(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable]
    async fn archive(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// A group that ends the saga: no step after it tells the saga's end.
struct GroupEndsTheSaga;

#[saga]
impl GroupEndsTheSaga {
    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable(group = "notices")]
    async fn email(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable(group = "notices")]
    async fn sms(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// A retriable step in a group before the pivot: one error, the order's, not a second one for the group.
struct MixedGroupBeforePivot;

#[saga]
impl MixedGroupBeforePivot {
    #[compensable(compensate = undo_flight, group = "bookings")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[retriable(group = "bookings")]
    async fn notify(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// A failed group is compensated whole.
struct CompensationOptOutInGroup;

#[saga]
impl CompensationOptOutInGroup {
    #[compensable(compensate = undo_flight, group = "bookings", compensate_on_failure = false)]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "bookings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// `hotel` runs at the same time as `flight`: the flight's output is not there yet.
struct ConditionReadsOwnGroup;

#[saga]
impl ConditionReadsOwnGroup {
    #[compensable(compensate = undo_flight, group = "bookings")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "bookings", when = "steps.flight.booked")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// A group is named like a step.
struct InvalidGroupName;

#[saga]
impl InvalidGroupName {
    #[compensable(compensate = undo_flight, group = "book ings")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "book ings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// A branch is named like a step.
struct InvalidBranchName;

#[saga]
impl InvalidBranchName {
    #[compensable(compensate = undo_flight, group = "bookings", branch = "air line")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "bookings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// No cascade: an invalid step name in a group without `branch` (the branch's name) is one
// error, the step name's.
struct InvalidStepNameInGroup;

#[saga]
impl InvalidStepNameInGroup {
    #[compensable(compensate = undo_flight, group = "bookings", name = "fl ight")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "bookings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

// No cascade: two steps of one name in a group without `branch` are one error, the duplicate
// name's, not a branch split by `hotel`.
struct DuplicateStepInGroup;

#[saga]
impl DuplicateStepInGroup {
    #[compensable(compensate = undo_flight, group = "bookings")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_hotel, group = "bookings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_return_flight, group = "bookings", name = "flight")]
    async fn return_flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_return_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

struct CompensableGroupAfterPivot;

// After the pivot nothing is compensated, so a group there holds only retriable steps.
#[saga]
impl CompensableGroupAfterPivot {
    #[compensable(compensate = undo_order)]
    async fn order(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_order(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_mail, group = "notices")]
    async fn mail(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_mail(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = undo_sms, group = "notices")]
    async fn sms(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
    async fn undo_sms(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[retriable]
    async fn archive(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {}
