//! Code generation: per step a wrapper implementing `Step` (and `Compensable`) by calling the
//! user's methods, and on the saga type `definition()` and `into_saga()`. Everything generated
//! lives in `const _: () = { ... };` and reaches the runtime through `::saga::__private`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use saga_core::{Participant, RetryPolicy, SagaDefinition, StepDefinition, StepKind};
use syn::ItemImpl;
use syn::spanned::Spanned;

use crate::ast::SagaAst;
use crate::ctxt::Ctxt;
use crate::parse;
use crate::{model, validate};

/// `#[saga(args)] item`: the expansion, or the item (without step attributes) plus every error.
pub(crate) fn saga(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemImpl = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                "#[saga] goes on an impl block: `#[saga(name = \"order\")] impl OrderSaga { ... }`",
            );
            let compile_error = error.to_compile_error();
            return quote!(#input #compile_error);
        }
    };
    let cx = Ctxt::default();
    let Some(ast) = parse::saga(&cx, args, item.clone()) else {
        return with_errors(strip_step_attributes(item), cx);
    };
    validate::check(&cx, &ast);
    if let Err(errors) = cx.check() {
        let item = &ast.item;
        let errors = errors.to_compile_error();
        return quote!(#item #errors);
    }
    let cx = Ctxt::default();
    validate::check_limits(&cx, &ast);
    if let Err(errors) = cx.check() {
        let item = &ast.item;
        let errors = errors.to_compile_error();
        return quote!(#item #errors);
    }
    generate(&ast)
}

fn with_errors(item: ItemImpl, cx: Ctxt) -> TokenStream {
    let errors = cx.check().err().map(|e| e.to_compile_error());
    quote!(#item #errors)
}

fn strip_step_attributes(mut item: ItemImpl) -> ItemImpl {
    for impl_item in &mut item.items {
        if let syn::ImplItem::Fn(method) = impl_item {
            method.attrs.retain(|a| {
                !(a.path().is_ident(crate::symbol::COMPENSABLE)
                    || a.path().is_ident(crate::symbol::PIVOT)
                    || a.path().is_ident(crate::symbol::RETRIABLE))
            });
        }
    }
    item
}

fn generate(ast: &SagaAst) -> TokenStream {
    let item = &ast.item;
    let self_ty = &ast.self_ty;
    let definition = model::definition(ast);
    let definition_tokens = definition_literal(&definition);
    let private = quote!(::saga::__private);

    let mut wrappers = Vec::new();
    let mut handlers = Vec::new();
    for step in &ast.steps {
        let Some(signature) = &step.signature else {
            continue;
        };
        let method = &step.method;
        let wrapper = format_ident!("__SagaStep_{}", method);
        let input = &signature.input;
        let output = &signature.output;
        let input_span = input.span();
        let output_span = output.span();
        let call_span = method.span();
        let execute = quote_spanned! {call_span=>
            <#self_ty>::#method(&self.0, cx, input)
        };
        wrappers.push(quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types)]
            struct #wrapper(::std::sync::Arc<#self_ty>);

            impl #private::Step for #wrapper {
                type Input = #input;
                type Output = #output;

                fn execute(
                    &self,
                    cx: &#private::StepContext<'_>,
                    input: Self::Input,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<Self::Output, #private::StepError>,
                > + ::core::marker::Send {
                    #execute
                }
            }
        });
        // Report a missing serde impl on the user's type, not on generated code.
        wrappers.push(quote_spanned! {input_span=>
            const _: fn() = || {
                fn input_must_deserialize<T: #private::DeserializeOwned + ::core::marker::Send>() {}
                input_must_deserialize::<#input>();
            };
        });
        wrappers.push(quote_spanned! {output_span=>
            const _: fn() = || {
                fn output_must_serialize<T: #private::Serialize + #private::DeserializeOwned + ::core::marker::Send>() {}
                output_must_serialize::<#output>();
            };
        });
        let handle = quote!(#wrapper(::std::sync::Arc::clone(&this)));
        match (step.kind, &step.compensate) {
            (StepKind::Compensable, Some(compensation)) => {
                // The step's input and output go in at the spans of the compensation's own
                // parameters, so a type that does not fit is reported there, by the compiler,
                // which also knows an alias or `std::option::Option<T>` for the same type.
                let (input_span, output_span) = ast
                    .methods
                    .iter()
                    .find(|m| m.sig.ident == *compensation)
                    .map(|m| {
                        let typed: Vec<_> = m
                            .sig
                            .inputs
                            .iter()
                            .filter_map(|arg| match arg {
                                syn::FnArg::Typed(t) => Some(t.ty.span()),
                                syn::FnArg::Receiver(_) => None,
                            })
                            .collect();
                        (typed[1], typed[2])
                    })
                    .unwrap_or((compensation.span(), compensation.span()));
                let input = quote_spanned!(input_span=> input);
                let output = quote_spanned!(output_span=> output);
                let compensate = quote_spanned! {compensation.span()=>
                    <#self_ty>::#compensation(&self.0, cx, #input, #output)
                };
                wrappers.push(quote! {
                    impl #private::Compensable for #wrapper {
                        fn compensate(
                            &self,
                            cx: &#private::StepContext<'_>,
                            input: Self::Input,
                            output: ::core::option::Option<Self::Output>,
                        ) -> impl ::core::future::Future<
                            Output = ::core::result::Result<(), #private::StepError>,
                        > + ::core::marker::Send {
                            #compensate
                        }
                    }
                });
                handlers.push(quote!(#private::compensable_handler(#handle)));
            }
            _ => handlers.push(quote!(#private::forward_handler(#handle))),
        }
    }

    let self_span = self_ty.span();
    let assert_shareable = quote_spanned! {self_span=>
        const _: fn() = || {
            fn saga_type_must_be_shareable<T: ::core::marker::Send + ::core::marker::Sync + 'static>() {}
            saga_type_must_be_shareable::<#self_ty>();
        };
    };
    let name = &definition.name;
    quote! {
        #item

        const _: () = {
            #assert_shareable
            #(#wrappers)*

            impl #self_ty {
                /// The saga's declaration, as `#[saga]` checked it at compile time: the single
                /// source of truth for the in-memory executor and the Step Functions state
                /// machine.
                #[allow(dead_code)]
                pub fn definition() -> #private::SagaDefinition {
                    #definition_tokens
                }

                /// This value as the handler of every step: a saga ready to run.
                #[allow(dead_code)]
                pub fn into_saga(self) -> #private::Saga {
                    let this = ::std::sync::Arc::new(self);
                    #private::Saga::from_parts(
                        Self::definition(),
                        ::std::vec![#(#handlers),*],
                    )
                    .expect(concat!("#[saga] checked saga `", #name, "` at compile time"))
                }
            }
        };
    }
}

fn definition_literal(definition: &SagaDefinition) -> TokenStream {
    let private = quote!(::saga::__private);
    let name = &definition.name;
    let version = definition.version;
    let steps = definition.steps.iter().map(step_literal);
    quote! {
        #private::SagaDefinition {
            name: ::std::string::String::from(#name),
            version: #version,
            steps: ::std::vec![#(#steps),*],
        }
    }
}

fn step_literal(step: &StepDefinition) -> TokenStream {
    let private = quote!(::saga::__private);
    let name = &step.name;
    let kind = match step.kind {
        StepKind::Compensable => quote!(Compensable),
        StepKind::Pivot => quote!(Pivot),
        StepKind::Retriable => quote!(Retriable),
    };
    let participant = match &step.participant {
        Participant::Queue(n) => {
            quote!(#private::Participant::Queue(::std::string::String::from(#n)))
        }
        Participant::Lambda(n) => {
            quote!(#private::Participant::Lambda(::std::string::String::from(#n)))
        }
    };
    let retry = policy_literal(&step.retry);
    let compensation_retry = policy_literal(&step.compensation_retry);
    let (timeout, heartbeat, on_failure) = (
        step.timeout_seconds,
        step.heartbeat_seconds,
        step.compensate_on_failure,
    );
    let condition = match &step.condition {
        Some(condition) => {
            // Parsed and checked at compile time; this parse of the same text cannot fail.
            let text = condition.to_string();
            quote! {
                ::core::option::Option::Some(
                    #private::Condition::parse(#text).expect("checked by #[saga]")
                )
            }
        }
        None => quote! { ::core::option::Option::None },
    };
    let group = match &step.group {
        Some(at) => {
            let (group, branch) = (&at.group, &at.branch);
            quote! {
                ::core::option::Option::Some(#private::GroupBranch {
                    group: ::std::string::String::from(#group),
                    branch: ::std::string::String::from(#branch),
                })
            }
        }
        None => quote! { ::core::option::Option::None },
    };
    quote! {
        #private::StepDefinition {
            name: ::std::string::String::from(#name),
            kind: #private::StepKind::#kind,
            participant: #participant,
            retry: #retry,
            compensation_retry: #compensation_retry,
            timeout_seconds: #timeout,
            heartbeat_seconds: #heartbeat,
            compensate_on_failure: #on_failure,
            condition: #condition,
            group: #group,
        }
    }
}

fn policy_literal(policy: &RetryPolicy) -> TokenStream {
    let private = quote!(::saga::__private);
    let max_attempts = policy.max_attempts;
    let interval = policy.interval_seconds;
    let rate = Literal::f64_suffixed(policy.backoff_rate);
    let max_delay = match policy.max_delay_seconds {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    };
    let jitter = format_ident!("{}", model::jitter_name(policy.jitter));
    quote! {
        #private::RetryPolicy {
            max_attempts: #max_attempts,
            interval_seconds: #interval,
            backoff_rate: #rate,
            max_delay_seconds: #max_delay,
            jitter: #private::JitterStrategy::#jitter,
        }
    }
}
