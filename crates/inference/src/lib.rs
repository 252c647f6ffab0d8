//! Text generation with Bit-Axon models: tokenizer and chat template, sampling, and streaming
//! generation that prefills once and then decodes one token at a time through the hybrid cache.
//!
//! ```no_run
//! use bit_axon::BitAxonModel;
//! use bit_axon_inference::{ChatTemplate, GenerationConfig, Message, Sampler, SamplingConfig, Session, TextTokenizer};
//! use burn::prelude::*;
//!
//! let device = Device::flex();
//! let dir = std::path::Path::new("checkpoint");
//! let (_, model, _) = BitAxonModel::load(dir, &device).unwrap();
//! let tok = TextTokenizer::from_model_dir(dir).unwrap();
//! let prompt = ChatTemplate::default().render(&[Message::user("Hello!")], true);
//! let ids = tok.encode(&prompt).unwrap();
//! let mut session = Session::new(&model, &device);
//! let mut sampler = Sampler::new(SamplingConfig { temperature: 0.7, seed: Some(1), ..Default::default() });
//! let cfg = GenerationConfig { stop_ids: tok.stop_ids(), ..Default::default() };
//! let out = session.generate(&ids, &cfg, &mut sampler, |_id| true);
//! println!("{}", tok.decode(&out.tokens));
//! ```

mod chat;
mod error;
mod generate;
mod rng;
mod sampling;
mod stream;
mod tokenizer;

pub use chat::{ChatTemplate, Message};
pub use error::{Error, Result};
pub use generate::{Generation, GenerationConfig, Session, StopReason};
pub use rng::Rng;
pub use sampling::{Sampler, SamplingConfig};
pub use stream::StreamDecoder;
pub use tokenizer::{SPECIAL_TOKENS, TextTokenizer, byte_level_tokenizer_json};
