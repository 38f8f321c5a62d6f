import { useState, type FormEvent } from "react";
import { api, call, session } from "../api/client";
import { credits } from "../api/problem";
import { NewPasswordFields, differs } from "../components/NewPassword";
import { ErrorBox } from "../components/ui";
import { useAction, useLoad } from "../lib/hooks";
import { Link, navigate } from "../lib/router";

/** The signed-in person's account: who they are here, and their password. */
export function Account() {
  const user = session.user;
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [done, setDone] = useState(false);
  const mismatch = differs(next, again);
  const { run: change, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    setDone(false);
    if (mismatch) return;
    await call(api.PUT("/v1/me/password", { body: { current_password: current, new_password: next } }));
    setDone(true);
    setCurrent("");
    setNext("");
    setAgain("");
  });
  return (
    <section>
      <h1>Account</h1>
      {user && (
        <p>
          Signed in as <strong>{user.email ?? user.username}</strong>. Your public profile is{" "}
          <Link to={`/u/${user.username}`}>@{user.username}</Link>.
        </p>
      )}
      <form className="panel" onSubmit={(e) => void change(e)} aria-labelledby="password-heading">
        <h2 id="password-heading">Change password</h2>
        <p className="muted small">Every other device signed in to this account is signed out. API keys keep working.</p>
        <label>
          Current password
          <input
            type="password"
            autoComplete="current-password"
            required
            value={current}
            onChange={(e) => setCurrent(e.target.value)}
          />
        </label>
        <NewPasswordFields password={next} again={again} onPassword={setNext} onAgain={setAgain} />
        <button type="submit" disabled={busy || mismatch}>
          {busy ? "Changing…" : "Change password"}
        </button>
        {done && (
          <p role="status" data-testid="password-changed">
            Password changed. Other devices were signed out.
          </p>
        )}
        <ErrorBox error={error} />
      </form>
      <DeleteAccount />
    </section>
  );
}

/** Deleting the account, behind its password and a plain statement of what goes and what stays. */
function DeleteAccount() {
  const balance = useLoad(() => call(api.GET("/v1/credits")), []);
  const [password, setPassword] = useState("");
  const purchased = balance.data?.purchased ?? 0;
  const { run: remove, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    if (!window.confirm("Delete your account for good? This cannot be undone.")) return;
    await call(api.POST("/v1/me/deletion", { body: { password } }));
    session.clear();
    navigate("/");
  });
  return (
    <form className="panel" onSubmit={(e) => void remove(e)} aria-labelledby="delete-heading">
      <h2 id="delete-heading">Delete account</h2>
      <p className="muted small">
        Your images, collections and likes are removed, generations still running are stopped, and you are signed out
        everywhere; API keys stop working. Your email and username become free. Records of payments and credits are
        kept.
      </p>
      {purchased > 0 && (
        <p className="error" data-testid="forfeit">
          Your {credits(purchased)} that do not expire (bought or given to you) will be lost.
        </p>
      )}
      <label>
        Password
        <input
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(e) => setPassword(e.target.value)}
        />
      </label>
      <button type="submit" className="danger" disabled={busy}>
        {busy ? "Deleting…" : "Delete my account"}
      </button>
      <ErrorBox error={error} />
    </form>
  );
}
