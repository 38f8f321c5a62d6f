import { useState, type FormEvent } from "react";
import { api, call, session } from "../api/client";
import { CurrentPassword, NewPasswordFields, differs } from "../components/Passwords";
import { ErrorBox } from "../components/ui";
import { useAction } from "../lib/hooks";
import { Link, navigate, useLocation } from "../lib/router";

function useNext(): string {
  const next = useLocation().query.get("next") ?? "/generate";
  // Only paths of this site: never an open redirect.
  return next.startsWith("/") && !next.startsWith("//") ? next : "/generate";
}

export function Login() {
  const next = useNext();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  // Set when the password was right and the account asks for an authenticator code too.
  const [challenge, setChallenge] = useState<string>();
  const { run: submit, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    const answer = await call(api.POST("/v1/auth/login", { body: { email, password } }));
    if ("challenge" in answer) {
      setChallenge(answer.challenge);
      return;
    }
    session.accept(answer);
    navigate(next);
  });
  if (challenge) return <SecondStep challenge={challenge} next={next} onRestart={() => setChallenge(undefined)} />;
  return (
    <section className="narrow">
      <h1>Sign in</h1>
      <form onSubmit={(e) => void submit(e)}>
        <label>
          Email
          <input type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <CurrentPassword value={password} onChange={setPassword} />
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <p>
        New here? <Link to={`/signup?next=${encodeURIComponent(next)}`}>Create an account</Link>
      </p>
      <p>
        <Link to="/forgot-password">Forgot your password?</Link>
      </p>
    </section>
  );
}

/** The code an account with two-step sign-in asks for after its password. */
function SecondStep({ challenge, next, onRestart }: { challenge: string; next: string; onRestart: () => void }) {
  const [code, setCode] = useState("");
  const { run: submit, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    session.accept(await call(api.POST("/v1/auth/login/two-factor", { body: { challenge, code } })));
    navigate(next);
  });
  return (
    <section className="narrow">
      <h1>Sign in</h1>
      <form onSubmit={(e) => void submit(e)} aria-label="Authenticator code">
        <label>
          Code from your authenticator app
          <input
            autoComplete="one-time-code"
            inputMode="text"
            required
            maxLength={64}
            value={code}
            onChange={(e) => setCode(e.target.value)}
          />
          <span className="hint">Six digits, or one of your recovery codes.</span>
        </label>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
      </form>
      <p>
        <button type="button" className="link" onClick={onRestart}>
          Start again
        </button>
      </p>
    </section>
  );
}

export function Signup() {
  const next = useNext();
  const [email, setEmail] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const { run: submit, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    session.accept(await call(api.POST("/v1/auth/signup", { body: { email, username, password } })));
    navigate(next);
  });
  return (
    <section className="narrow">
      <h1>Create an account</h1>
      <p className="muted">New accounts start with free credits, and more arrive every day.</p>
      <form onSubmit={(e) => void submit(e)}>
        <label>
          Email
          <input type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </label>
        <label>
          Username
          <input
            autoComplete="username"
            required
            minLength={3}
            maxLength={32}
            pattern="[A-Za-z0-9_\-]{3,32}"
            title="3–32 letters, digits, - or _"
            value={username}
            onChange={(e) => setUsername(e.target.value)}
          />
          <span className="hint">3–32 letters, digits, - or _. Your public page is /u/{username || "name"}.</span>
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="new-password"
            required
            minLength={8}
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
          <span className="hint">At least 8 characters.</span>
        </label>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create account"}
        </button>
      </form>
      <p>
        Have an account? <Link to={`/login?next=${encodeURIComponent(next)}`}>Sign in</Link>
      </p>
    </section>
  );
}

/** Asks for a reset link. The answer is the same whether or not the email has an account. */
export function ForgotPassword() {
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState(false);
  const { run: submit, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    await call(api.POST("/v1/auth/password-reset", { body: { email } }));
    setSent(true);
  });
  return (
    <section className="narrow">
      <h1>Forgot your password?</h1>
      {sent ? (
        <p role="status" data-testid="reset-sent">
          If an account signs in with {email}, a link to choose a new password is on its way. It works for an hour.
        </p>
      ) : (
        <form onSubmit={(e) => void submit(e)}>
          <p className="muted">We will email you a link to choose a new one.</p>
          <label>
            Email
            <input type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </label>
          <ErrorBox error={error} />
          <button type="submit" disabled={busy}>
            {busy ? "Sending…" : "Send the link"}
          </button>
        </form>
      )}
      <p>
        <Link to="/login">Back to sign in</Link>
      </p>
    </section>
  );
}

/** Sets a new password with the token from a reset link (`/reset-password?token=…`). */
export function ResetPassword() {
  const token = useLocation().query.get("token") ?? "";
  const [password, setPassword] = useState("");
  const [again, setAgain] = useState("");
  const [done, setDone] = useState(false);
  const mismatch = differs(password, again);
  const { run: submit, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    if (mismatch) return;
    await call(api.POST("/v1/auth/password-reset/confirm", { body: { token, new_password: password } }));
    setDone(true);
  });
  if (done) {
    return (
      <section className="narrow">
        <h1>Password set</h1>
        <p role="status">
          Your new password is set, and every device was signed out. <Link to="/login">Sign in</Link> with it.
        </p>
      </section>
    );
  }
  return (
    <section className="narrow">
      <h1>Choose a new password</h1>
      <form onSubmit={(e) => void submit(e)}>
        <NewPasswordFields password={password} again={again} onPassword={setPassword} onAgain={setAgain} />
        <ErrorBox error={error} />
        <button type="submit" disabled={busy || mismatch || token === ""}>
          {busy ? "Setting…" : "Set password"}
        </button>
      </form>
      {token === "" && <p className="error">This page needs the link from the email.</p>}
      <p>
        <Link to="/forgot-password">Send a new link</Link>
      </p>
    </section>
  );
}

/** Confirms a new email with the token from the link mailed to it (`/confirm-email?token=…`). */
export function ConfirmEmail() {
  const token = useLocation().query.get("token") ?? "";
  const [done, setDone] = useState(false);
  // A button, not a request on load: mail scanners that open links must not confirm them.
  const { run: confirm, busy, error } = useAction(async () => {
    await call(api.POST("/v1/auth/email-change/confirm", { body: { token } }));
    setDone(true);
    if (session.user) {
      const me = await call(api.GET("/v1/me")).catch(() => null);
      if (me) session.setUser(me);
    }
  });
  return (
    <section className="narrow">
      <h1>Confirm your new email</h1>
      {done ? (
        <p role="status" data-testid="email-confirmed">
          Your account's email is now this address. Sign in with it from now on.
        </p>
      ) : (
        <>
          <p>Confirm that this address is your Easel account's email from now on.</p>
          <ErrorBox error={error} />
          <button type="button" disabled={busy || token === ""} onClick={() => void confirm()}>
            {busy ? "Confirming…" : "Confirm email"}
          </button>
          {token === "" && <p className="error">This page needs the link from the email.</p>}
        </>
      )}
    </section>
  );
}
