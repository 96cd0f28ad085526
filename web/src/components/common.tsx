import type { ComponentChildren } from "preact";
import { Code } from "@connectrpc/connect";
import { useBoard } from "../context";
import type { StreamState } from "../stream";

/** A link inside the wallboard: keeps `?api`, `?site` and `?lang`, and does not reload. */
export function BoardLink({
  path,
  class: className,
  children,
}: {
  path: string;
  class?: string;
  children: ComponentChildren;
}) {
  const { href, navigate } = useBoard();
  const target = href(path);
  return (
    <a
      href={target}
      class={className}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(target);
      }}
    >
      {children}
    </a>
  );
}

/** Why a board has nothing to show yet, when its stream failed before its first view. */
export function StreamProblem({ stream, what }: { stream: StreamState<unknown>; what: string }) {
  const { labels } = useBoard();
  if (stream.value !== undefined || stream.error === undefined) return null;
  const code = stream.error.code;
  const title =
    code === Code.NotFound ? labels.notFound : code === Code.PermissionDenied ? labels.permissionDenied : labels.error;
  return (
    <div class="stream-problem" role="alert">
      <strong>{title}</strong> <span>{what}</span>
      {stream.error.rawMessage !== "" && <p>{stream.error.rawMessage}</p>}
    </div>
  );
}

export function Panel({
  title,
  class: className,
  children,
}: {
  title: ComponentChildren;
  class?: string;
  children: ComponentChildren;
}) {
  return (
    <section class={`panel${className === undefined ? "" : ` ${className}`}`}>
      <h2 class="panel-title">{title}</h2>
      {children}
    </section>
  );
}
