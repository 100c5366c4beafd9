//! The text form of a [`Condition`], read by a recursive descent over its tokens:
//!
//! ```text
//! or      := and ("||" and)*
//! and     := not ("&&" not)*
//! not     := "!" not | atom
//! atom    := "(" or ")" | "present" "(" path ")" | path [op literal]
//! op      := "==" | "!=" | "<" | "<=" | ">" | ">="
//! literal := string | number | "true" | "false" | "null"
//! path    := ident ("." ident)*
//! ```
//!
//! A bare path means `path == true`. Errors say where (a byte offset into the text) and what
//! to write instead.

use serde_json::Number;
use thiserror::Error;

use super::{Comparison, Condition, DocumentPath, Literal};

/// Why a condition's text does not parse: what is wrong, where, and what to write.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message} (at byte {offset} of `{text}`)")]
pub struct ConditionError {
    /// What is wrong, and what to write instead.
    pub message: String,
    /// Where, as a byte offset into the text.
    pub offset: usize,
    /// The whole text.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(Number),
    Op(&'static str),
    Dot,
    Open,
    Close,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Ident(name) => format!("`{name}`"),
            Token::Str(s) => format!("the string {}", serde_json::Value::from(s.as_str())),
            Token::Num(n) => format!("the number {n}"),
            Token::Op(op) => format!("`{op}`"),
            Token::Dot => "`.`".to_owned(),
            Token::Open => "`(`".to_owned(),
            Token::Close => "`)`".to_owned(),
            Token::End => "the end".to_owned(),
        }
    }
}

/// The operators, longest first so that `<=` is not read as `<`.
const OPERATORS: [&str; 9] = ["||", "&&", "==", "!=", "<=", ">=", "<", ">", "!"];

fn tokens(text: &str) -> Result<Vec<(usize, Token)>, ConditionError> {
    let error = |offset: usize, message: String| ConditionError {
        message,
        offset,
        text: text.to_owned(),
    };
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let rest = &text[i..];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'.' {
            out.push((i, Token::Dot));
            i += 1;
        } else if c == b'(' {
            out.push((i, Token::Open));
            i += 1;
        } else if c == b')' {
            out.push((i, Token::Close));
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push((i, Token::Ident(rest[..len].to_owned())));
            i += len;
        } else if c.is_ascii_digit()
            || (c == b'-' && rest[1..].starts_with(|c: char| c.is_ascii_digit()))
        {
            let len = 1 + rest[1..]
                .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
                .unwrap_or(rest.len() - 1);
            let number: Number = rest[..len]
                .parse()
                .map_err(|_| error(i, format!("`{}` is not a number", &rest[..len])))?;
            out.push((i, Token::Num(number)));
            i += len;
        } else if c == b'"' {
            // JSON's string syntax, escapes included.
            let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<String>();
            match stream.next() {
                Some(Ok(s)) => {
                    out.push((i, Token::Str(s)));
                    i += stream.byte_offset();
                }
                _ => {
                    return Err(error(
                        i,
                        "this string does not end: close it with `\"` (write `\\\"` for a quote \
                         inside it)"
                            .to_owned(),
                    ));
                }
            }
        } else if let Some(op) = OPERATORS.iter().find(|op| rest.starts_with(**op)) {
            out.push((i, Token::Op(op)));
            i += op.len();
        } else {
            let found = rest.chars().next().unwrap_or(' ');
            let advice = match found {
                '=' => "compare with `==`",
                '&' => "write `&&` for and",
                '|' => "write `||` for or",
                '\'' => "strings are in double quotes: `\"text\"`",
                '$' => "name the field without `$.`: `steps.flight.price`, `car_wanted`",
                _ => {
                    "a condition is made of fields, literals, `== != < <= > >=`, `! && ||`, \
                      parentheses and `present(field)`"
                }
            };
            return Err(error(i, format!("unexpected `{found}`: {advice}")));
        }
    }
    out.push((text.len(), Token::End));
    Ok(out)
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<(usize, Token)>,
    at: usize,
}

pub(super) fn parse(text: &str) -> Result<Condition, ConditionError> {
    let mut parser = Parser {
        text,
        tokens: tokens(text)?,
        at: 0,
    };
    if parser.peek() == &Token::End {
        return Err(parser.error(
            "a condition cannot be empty: name a field, as in `car_wanted` or `nights > 2`",
        ));
    }
    let condition = parser.or()?;
    match parser.peek() {
        Token::End => Ok(condition),
        Token::Close => Err(parser.error("this `)` closes nothing")),
        other => {
            let found = other.describe();
            Err(parser.error(format!("expected `&&`, `||` or the end, found {found}")))
        }
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.at].1
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.at].1.clone();
        if token != Token::End {
            self.at += 1;
        }
        token
    }

    fn error(&self, message: impl Into<String>) -> ConditionError {
        ConditionError {
            message: message.into(),
            offset: self.tokens[self.at].0,
            text: self.text.to_owned(),
        }
    }

    fn or(&mut self) -> Result<Condition, ConditionError> {
        self.chain("||", Self::and, Condition::Or)
    }

    fn and(&mut self) -> Result<Condition, ConditionError> {
        self.chain("&&", Self::not, Condition::And)
    }

    /// `term (op term)*`, one condition when there is one term.
    fn chain(
        &mut self,
        op: &'static str,
        term: fn(&mut Self) -> Result<Condition, ConditionError>,
        all: fn(Vec<Condition>) -> Condition,
    ) -> Result<Condition, ConditionError> {
        let mut terms = vec![term(self)?];
        while self.peek() == &Token::Op(op) {
            self.next();
            terms.push(term(self)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            all(terms)
        })
    }

    fn not(&mut self) -> Result<Condition, ConditionError> {
        if self.peek() == &Token::Op("!") {
            self.next();
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Condition, ConditionError> {
        match self.peek().clone() {
            Token::Open => {
                self.next();
                let inner = self.or()?;
                if self.peek() != &Token::Close {
                    return Err(self.error(format!(
                        "expected `)` to close the `(`, found {}",
                        self.peek().describe()
                    )));
                }
                self.next();
                Ok(inner)
            }
            Token::Ident(name)
                if name == "present" && self.tokens[self.at + 1].1 == Token::Open =>
            {
                self.next();
                self.next();
                let path = self.path()?;
                if self.peek() != &Token::Close {
                    return Err(self.error(format!(
                        "`present(...)` takes one field: expected `)`, found {}",
                        self.peek().describe()
                    )));
                }
                self.next();
                Ok(Condition::Present(path))
            }
            Token::Ident(_) => {
                let path = self.path()?;
                self.comparison(path)
            }
            other => Err(self.error(format!(
                "expected a field (as in `car_wanted` or `steps.flight.price`), `!`, `(` or \
                 `present(field)`, found {}; a literal goes after the field it is compared \
                 with, as in `nights > 2`",
                other.describe()
            ))),
        }
    }

    fn path(&mut self) -> Result<DocumentPath, ConditionError> {
        let mut segments = Vec::new();
        loop {
            match self.peek().clone() {
                Token::Ident(name) if matches!(name.as_str(), "true" | "false" | "null") => {
                    return Err(self.error(format!(
                        "`{name}` is a literal, not a field: compare a field with it, as in \
                         `car_wanted == {name}`"
                    )));
                }
                Token::Ident(name) => {
                    self.next();
                    segments.push(name);
                }
                other => {
                    return Err(
                        self.error(format!("expected a field name, found {}", other.describe()))
                    );
                }
            }
            if self.peek() != &Token::Dot {
                break;
            }
            self.next();
        }
        Ok(DocumentPath::new(segments))
    }

    fn comparison(&mut self, path: DocumentPath) -> Result<Condition, ConditionError> {
        let op = match self.peek() {
            Token::Op(op @ ("==" | "!=" | "<" | "<=" | ">" | ">=")) => *op,
            _ => return Ok(Condition::Equals(path, Literal::Bool(true))),
        };
        self.next();
        let literal = self.next();
        let at = self.at.saturating_sub(1);
        let fail = |parser: &Self, message: String| ConditionError {
            message,
            offset: parser.tokens[at].0,
            text: parser.text.to_owned(),
        };
        let comparison = match op {
            "<" => Some(Comparison::Less),
            "<=" => Some(Comparison::LessOrEqual),
            ">" => Some(Comparison::Greater),
            ">=" => Some(Comparison::GreaterOrEqual),
            _ => None,
        };
        if let Some(comparison) = comparison {
            return match literal {
                Token::Num(n) => Ok(Condition::Compare(path, comparison, n)),
                other => Err(fail(
                    self,
                    format!(
                        "`{op}` compares numbers: write a number after it, as in `{path} {op} 2`, \
                         found {}",
                        other.describe()
                    ),
                )),
            };
        }
        let equals = match literal {
            Token::Str(s) => Condition::Equals(path, Literal::String(s)),
            Token::Num(n) => Condition::Equals(path, Literal::Number(n)),
            Token::Ident(word) if word == "true" || word == "false" => {
                Condition::Equals(path, Literal::Bool(word == "true"))
            }
            Token::Ident(word) if word == "null" => Condition::Null(path),
            other => {
                return Err(fail(
                    self,
                    format!(
                        "`{op}` compares a field with a string, a number, `true`, `false` or \
                         `null`, found {}{}",
                        other.describe(),
                        match other {
                            Token::Ident(_) => " (a string is in double quotes)",
                            _ => "",
                        }
                    ),
                ));
            }
        };
        Ok(if op == "!=" {
            Condition::Not(Box::new(equals))
        } else {
            equals
        })
    }
}
