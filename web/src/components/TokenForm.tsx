import { useState } from "preact/hooks";
import type { Labels } from "../i18n";
import type { AccessProblem } from "../stream";

/** Asks for the access token when the server refuses the page; shown over the board. */
export function TokenForm({
  labels,
  problem,
  onToken,
}: {
  labels: Labels;
  problem: AccessProblem;
  onToken: (token: string) => void;
}) {
  const [token, setToken] = useState("");
  return (
    <div class="overlay">
      <form
        class="token-form"
        data-testid="token-form"
        onSubmit={(event) => {
          event.preventDefault();
          const trimmed = token.trim();
          if (trimmed !== "") onToken(trimmed);
        }}
      >
        <h2>{labels.tokenTitle}</h2>
        <p>{problem.kind === "denied" ? labels.tokenDenied : labels.tokenHelp}</p>
        {problem.message !== "" && <p class="form-error">{problem.message}</p>}
        <label>
          <span>{labels.tokenLabel}</span>
          <input
            name="token"
            type="password"
            autocomplete="off"
            spellcheck={false}
            required
            value={token}
            onInput={(event) => setToken((event.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit">{labels.tokenSubmit}</button>
      </form>
    </div>
  );
}
