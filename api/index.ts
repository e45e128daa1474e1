export { createEngine, wrap, type ChatCreateParams, type CompletionCreateParams, type CreateEngineOptions, type DopplerEngine } from './engine.ts';
export { ApiError, toApiError } from './errors.ts';
export { OpenAiModel, usageOf, type ChatCompletion, type ChatCompletionChunk, type Completion, type CompletionChunk, type Run, type Usage } from './openai.ts';
export { parseChatRequest, parseCompletionRequest, type ChatRequest, type CompletionRequest } from './request.ts';
