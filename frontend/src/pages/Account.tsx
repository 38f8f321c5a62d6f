import { useState, type FormEvent } from "react";
import { api, call, session } from "../api/client";
import { credits } from "../api/problem";
import { CurrentPassword, NewPasswordFields, differs } from "../components/Passwords";
import { ErrorBox, Loading } from "../components/ui";
import { useAction, useLoad } from "../lib/hooks";
import { dateTime, deviceName } from "../lib/format";
import { Link, navigate } from "../lib/router";

/** The signed-in person's account: who they are here, and their password. */
export function Account() {
  const user = session.user;
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [done, setDone] = useState(false);
  // Bumped by a password change, which signs the other devices out: the list is read again.
  const [changes, setChanges] = useState(0);
  const mismatch = differs(next, again);
  const { run: change, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    setDone(false);
    if (mismatch) return;
    await call(api.PUT("/v1/me/password", { body: { current_password: current, new_password: next } }));
    setDone(true);
    setChanges((n) => n + 1);
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
      {user?.email && !user.email_verified && <ConfirmEmailAgain email={user.email} />}
      <form className="panel" onSubmit={(e) => void change(e)} aria-labelledby="password-heading">
        <h2 id="password-heading">Change password</h2>
        <p className="muted small">Every other device signed in to this account is signed out. API keys keep working.</p>
        <CurrentPassword label="Current password" value={current} onChange={setCurrent} />
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
      <ChangeEmail />
      <TwoFactor />
      <Devices key={changes} />
      <Activity key={`activity-${changes}`} />
      <DownloadData />
      <DeleteAccount />
    </section>
  );
}

/** The email is not confirmed yet: the link mailed at sign-up, again. */
function ConfirmEmailAgain({ email }: { email: string }) {
  const [sent, setSent] = useState(false);
  const { run: send, busy, error } = useAction(async () => {
    await call(api.POST("/v1/me/email/verification"));
    setSent(true);
  });
  return (
    <div className="panel" data-testid="unconfirmed">
      <p>
        {email} is not confirmed yet: open the link we mailed to it.{" "}
        {sent ? (
          <span role="status">A new link is on its way.</span>
        ) : (
          <button type="button" className="link" disabled={busy} onClick={() => void send()}>
            Send the link again
          </button>
        )}
      </p>
      <ErrorBox error={error} />
    </div>
  );
}

/** A new email, which the new address confirms by the link mailed to it. */
function ChangeEmail() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [sentTo, setSentTo] = useState<string>();
  const { run: change, busy, error } = useAction(async (event: FormEvent) => {
    event.preventDefault();
    await call(api.POST("/v1/me/email", { body: { email, password } }));
    setSentTo(email);
    setPassword("");
  });
  return (
    <form className="panel" onSubmit={(e) => void change(e)} aria-labelledby="email-heading">
      <h2 id="email-heading">Change email</h2>
      <p className="muted small">We email the new address a link; your email changes once you open it.</p>
      <label>
        New email
        <input type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
      </label>
      <CurrentPassword value={password} onChange={setPassword} />
      <button type="submit" disabled={busy}>
        {busy ? "Sending…" : "Send the link"}
      </button>
      {sentTo && (
        <p role="status" data-testid="email-link-sent">
          A link is on its way to {sentTo}. Open it within a day.
        </p>
      )}
      <ErrorBox error={error} />
    </form>
  );
}

/** Saves recovery codes as a text file, made in the browser: they never travel again. */
function saveCodes(codes: string[], username: string) {
  const text = `Easel recovery codes for ${username}\nEach signs in once in place of the authenticator app's code.\n\n${codes.join("\n")}\n`;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  link.download = `easel-recovery-codes-${username}.txt`;
  link.click();
  URL.revokeObjectURL(link.href);
}

/** Two-step sign-in: an authenticator app's code after the password. */
function TwoFactor() {
  const [on, setOn] = useState(session.user?.two_factor ?? false);
  const [password, setPassword] = useState("");
  const [setup, setSetup] = useState<{ secret: string; otpauth_url: string }>();
  const [code, setCode] = useState("");
  const [codes, setCodes] = useState<string[]>();
  const turned = (value: boolean) => {
    setOn(value);
    if (session.user) session.setUser({ ...session.user, two_factor: value });
  };
  const begin = useAction(async (event: FormEvent) => {
    event.preventDefault();
    setCodes(undefined);
    setSetup(await call(api.POST("/v1/me/two-factor", { body: { password } })));
    setPassword("");
  });
  const confirm = useAction(async (event: FormEvent) => {
    event.preventDefault();
    const answer = await call(api.POST("/v1/me/two-factor/confirmation", { body: { code } }));
    setCodes(answer.codes);
    setSetup(undefined);
    setCode("");
    turned(true);
  });
  const renew = useAction(async () => {
    setCodes((await call(api.POST("/v1/me/two-factor/recovery-codes", { body: { password } }))).codes);
    setPassword("");
  });
  // Read again after codes are made or used up here.
  const status = useLoad(() => call(api.GET("/v1/me/two-factor")), [on, codes]);
  const left = status.data?.recovery_codes_left;
  const remove = useAction(async () => {
    await call(api.POST("/v1/me/two-factor/removal", { body: { password } }));
    setPassword("");
    setCodes(undefined);
    turned(false);
  });
  const recovery = codes && (
    <div data-testid="recovery-codes">
      <p>
        <strong>Recovery codes.</strong> Each signs in once in place of the app's code. Keep them somewhere safe: they
        are not shown again.
      </p>
      <ul className="codes">
        {codes.map((c) => (
          <li key={c}>
            <code>{c}</code>
          </li>
        ))}
      </ul>
      <button type="button" onClick={() => saveCodes(codes, session.user?.username ?? "account")}>
        Save as a text file
      </button>
    </div>
  );
  if (setup) {
    return (
      <form className="panel" onSubmit={(e) => void confirm.run(e)} aria-labelledby="two-factor-heading">
        <h2 id="two-factor-heading">Two-step sign-in</h2>
        <p>
          Add this key to your authenticator app, or <a href={setup.otpauth_url}>open it in the app</a>:
        </p>
        <p>
          <code className="secret" data-testid="two-factor-key">
            {setup.secret.match(/.{1,4}/g)?.join(" ")}
          </code>
        </p>
        <label>
          The code the app shows
          <input
            autoComplete="one-time-code"
            inputMode="numeric"
            required
            pattern="[0-9]{6}"
            title="six digits"
            value={code}
            onChange={(e) => setCode(e.target.value)}
          />
        </label>
        <button type="submit" disabled={confirm.busy}>
          {confirm.busy ? "Checking…" : "Turn on"}
        </button>
        <ErrorBox error={confirm.error} />
      </form>
    );
  }
  if (!on) {
    return (
      <form className="panel" onSubmit={(e) => void begin.run(e)} aria-labelledby="two-factor-heading">
        <h2 id="two-factor-heading">Two-step sign-in</h2>
        <p className="muted small">
          Off. With it on, signing in takes a code from an authenticator app on your phone as well as your password.
        </p>
        <CurrentPassword value={password} onChange={setPassword} />
        <button type="submit" disabled={begin.busy}>
          {begin.busy ? "Starting…" : "Set up"}
        </button>
        <ErrorBox error={begin.error} />
      </form>
    );
  }
  return (
    <section className="panel" aria-labelledby="two-factor-heading">
      <h2 id="two-factor-heading">Two-step sign-in</h2>
      <p data-testid="two-factor-on">On: signing in takes a code from your authenticator app.</p>
      {left !== undefined && !codes && (
        <p className={left <= 3 ? "error" : "muted small"} data-testid="codes-left">
          {left === 1 ? "1 recovery code left." : `${left} recovery codes left.`}
          {left <= 3 && " Make new ones before they run out."}
        </p>
      )}
      {recovery}
      <CurrentPassword value={password} onChange={setPassword} />
      <div className="row">
        <button type="button" disabled={renew.busy} onClick={() => void renew.run()}>
          New recovery codes
        </button>
        <button type="button" className="danger" disabled={remove.busy} onClick={() => void remove.run()}>
          Turn off
        </button>
      </div>
      <ErrorBox error={renew.error ?? remove.error} />
    </section>
  );
}

/** The devices signed in to the account, each of which can be signed out from here. */
function Devices() {
  const devices = useLoad(() => call(api.GET("/v1/me/sessions", { params: { query: { limit: 100 } } })), []);
  const [error, setError] = useState<unknown>();
  const signOut = async (id: string) => {
    setError(undefined);
    try {
      await call(api.DELETE("/v1/me/sessions/{id}", { params: { path: { id } } }));
      devices.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section className="panel" aria-labelledby="devices-heading">
      <h2 id="devices-heading">Signed-in devices</h2>
      {devices.loading && <Loading />}
      <ErrorBox error={devices.error ?? error} />
      <ul className="keys">
        {(devices.data?.data ?? []).map((d) => (
          <li key={d.id} className="row" data-testid="device">
            <span className="grow">
              <strong title={d.user_agent ?? undefined}>{deviceName(d.user_agent)}</strong>
              <span className="muted small">
                {" "}
                {d.ip ? `from ${d.ip} · ` : ""}signed in {dateTime(d.created_at)}
                {d.second_factor ? " with two steps" : ""} · last active {dateTime(d.last_active_at)}
              </span>
            </span>
            {d.current ? (
              <span className="muted small">This device</span>
            ) : (
              <button type="button" className="danger" onClick={() => void signOut(d.id)}>
                Sign out
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

const ACTIVITY_WORDS: Record<string, string> = {
  signed_in: "Signed in",
  signed_in_with_recovery_code: "Signed in with a recovery code",
  wrong_password: "A wrong password was given",
  password_changed: "Password changed",
  password_reset: "Password set from an emailed link",
  two_factor_on: "Two-step sign-in turned on",
  two_factor_off: "Two-step sign-in turned off",
  recovery_codes_renewed: "New recovery codes made",
  api_key_created: "API key created",
  api_key_revoked: "API key revoked",
  device_signed_out: "A device was signed out",
  data_downloaded: "Data downloaded",
};

/** The account's recent security events, so a sign-in or change its owner did not make shows. */
function Activity() {
  const events = useLoad(() => call(api.GET("/v1/me/security-events", { params: { query: { limit: 10 } } })), []);
  return (
    <section className="panel" aria-labelledby="activity-heading">
      <h2 id="activity-heading">Recent activity</h2>
      {events.loading && <Loading />}
      <ErrorBox error={events.error} />
      <ul className="keys">
        {(events.data?.data ?? []).map((e) => (
          <li key={e.id} className="row" data-testid="activity">
            <span className="grow">
              <strong>{ACTIVITY_WORDS[e.activity] ?? e.activity}</strong>
              <span className="muted small">
                {" "}
                {dateTime(e.created_at)}
                {e.user_agent ? ` · ${deviceName(e.user_agent)}` : ""}
                {e.ip ? ` · from ${e.ip}` : ""}
                {e.current ? " · this device" : ""}
              </span>
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** All of the account's data as one zip file, downloaded from a short-lived link. */
function DownloadData() {
  const { run: download, busy, error } = useAction(async () => {
    const link = await call(api.POST("/v1/me/export"));
    // A plain navigation: the browser saves the archive as it arrives, however large it is.
    window.location.assign(link.url);
  });
  return (
    <section className="panel" aria-labelledby="export-heading">
      <h2 id="export-heading">Download your data</h2>
      <p className="muted small">
        One zip file: your account, every generation with its settings, your images as they were made, your
        collections, and your credit history and purchases.
      </p>
      <button type="button" disabled={busy} onClick={() => void download()}>
        {busy ? "Preparing…" : "Download my data"}
      </button>
      <ErrorBox error={error} />
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
        kept. Download your data first if you want to keep your images.
      </p>
      {purchased > 0 && (
        <p className="error" data-testid="forfeit">
          Your {credits(purchased)} that do not expire (bought or given to you) will be lost.
        </p>
      )}
      <CurrentPassword value={password} onChange={setPassword} />
      <button type="submit" className="danger" disabled={busy}>
        {busy ? "Deleting…" : "Delete my account"}
      </button>
      <ErrorBox error={error} />
    </form>
  );
}
