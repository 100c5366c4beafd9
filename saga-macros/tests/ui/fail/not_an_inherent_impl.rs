use saga::saga;

struct S;

trait T {}

#[saga]
impl T for S {}

fn main() {}
