"""The text and its tokens: WikiText loading (Hugging Face ``datasets`` or local files), the
character and GPT-2 tokenizers, and the verified token caches a run trains from."""
