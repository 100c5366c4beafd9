use saga::saga;

struct S;

#[saga]
impl S {
    fn helper(&self) {}
}

fn main() {}
