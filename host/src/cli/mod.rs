pub fn main(_a: Vec<String>) -> i32 { 0 }
