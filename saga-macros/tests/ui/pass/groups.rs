use saga::{saga, GroupBranch, Stage, StepContext, StepError};

struct Trip;

/// bookings { air: [flight, seat], hotel: [hotel], car: [car] }; charge; notices { email, sms };
/// archive.
#[saga]
impl Trip {
    #[compensable(compensate = cancel_flight, group = "bookings", branch = "air")]
    async fn flight(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn cancel_flight(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    // Runs after `flight`, in the same branch.
    #[compensable(compensate = release_seat, group = "bookings", branch = "air")]
    async fn seat(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn release_seat(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = cancel_hotel, group = "bookings")]
    async fn hotel(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn cancel_hotel(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[compensable(compensate = return_car, group = "bookings", name = "rent_car")]
    async fn car(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    async fn return_car(&self, _cx: &StepContext<'_>, _i: (), _o: Option<()>) -> Result<(), StepError> { Ok(()) }

    #[pivot]
    async fn charge(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable(group = "notices")]
    async fn email(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    #[retriable(group = "notices")]
    async fn sms(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }

    // The step after a group that always runs, whose answer tells the saga's end.
    #[retriable]
    async fn archive(&self, _cx: &StepContext<'_>, _i: ()) -> Result<(), StepError> { Ok(()) }
}

fn main() {
    let d = Trip::definition();
    assert_eq!(d.validate(), Ok(()));
    let groups: Vec<_> = d.steps.iter().map(|s| (s.name.as_str(), s.group.clone())).collect();
    let at = |group: &str, branch: &str| Some(GroupBranch::new(group, branch));
    assert_eq!(
        groups,
        [
            ("flight", at("bookings", "air")),
            ("seat", at("bookings", "air")),
            // Without `branch`, the branch is named after the step (its `name`, if given).
            ("hotel", at("bookings", "hotel")),
            ("rent_car", at("bookings", "rent_car")),
            ("charge", None),
            ("email", at("notices", "email")),
            ("sms", at("notices", "sms")),
            ("archive", None),
        ]
    );
    let stages = d.stages();
    assert_eq!(stages.len(), 4, "{stages:?}");
    let Stage::Group(bookings) = &stages[0] else { panic!("{stages:?}") };
    assert_eq!(bookings.name, "bookings");
    assert_eq!(bookings.steps, 0..4);
    let branches: Vec<_> = bookings.branches.iter().map(|b| (b.name.as_str(), b.steps.clone())).collect();
    assert_eq!(branches, [("air", vec![0, 1]), ("hotel", vec![2]), ("rent_car", vec![3])]);
    assert_eq!(stages[1], Stage::Step(4));
    let Stage::Group(notices) = &stages[2] else { panic!("{stages:?}") };
    assert_eq!((notices.name.as_str(), notices.steps.clone()), ("notices", 5..7));
    let branches: Vec<_> = notices.branches.iter().map(|b| (b.name.as_str(), b.steps.clone())).collect();
    assert_eq!(branches, [("email", vec![5]), ("sms", vec![6])]);
    assert_eq!(stages[3], Stage::Step(7));
    let _saga = Trip.into_saga();
}
