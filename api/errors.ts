/** Errors in the OpenAI shape: an HTTP status and `{ error: { message, type, param, code } }`. */
import { ChatTemplateError, ContextLengthError, NoChatTemplateError } from '../engine/index.ts';

export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;

  constructor(status: number, message: string, opts: { type?: string; param?: string; code?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.status = status;
    this.type = opts.type ?? (status === 401 ? 'authentication_error' : status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** The engine's refusals of a request, as the 4xx a client can act on; anything else is a 500. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof NoChatTemplateError) return new ApiError(400, err.message, { code: 'no_chat_template', param: 'messages' });
  if (err instanceof ChatTemplateError) return new ApiError(400, err.message, { param: 'messages' });
  if (err instanceof ContextLengthError) return new ApiError(400, err.message, { code: 'context_length_exceeded', param: 'max_tokens' });
  if (err instanceof RangeError) return new ApiError(400, err.message);
  return new ApiError(500, err instanceof Error ? err.message : String(err), { cause: err });
}
