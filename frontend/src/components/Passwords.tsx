/** The account's password, given again to prove it is its owner at the keyboard. */
export function CurrentPassword({
  value,
  onChange,
  label = "Password",
}: {
  value: string;
  onChange: (value: string) => void;
  label?: string;
}) {
  return (
    <label>
      {label}
      <input
        type="password"
        autoComplete="current-password"
        required
        value={value}
        onChange={(e) => onChange(e.target.value)}
      />
    </label>
  );
}

/** The two fields of a new password, typed twice so a slip of the finger does not lock anyone out. */
export function NewPasswordFields({
  password,
  again,
  onPassword,
  onAgain,
}: {
  password: string;
  again: string;
  onPassword: (value: string) => void;
  onAgain: (value: string) => void;
}) {
  const mismatch = differs(password, again);
  return (
    <>
      <label>
        New password
        <input
          type="password"
          autoComplete="new-password"
          required
          minLength={8}
          maxLength={128}
          value={password}
          onChange={(e) => onPassword(e.target.value)}
        />
      </label>
      <label>
        New password again
        <input
          type="password"
          autoComplete="new-password"
          required
          value={again}
          aria-invalid={mismatch}
          onChange={(e) => onAgain(e.target.value)}
        />
      </label>
      {mismatch && <p className="error">The two new passwords differ.</p>}
    </>
  );
}

/** Whether the second typing is under way and does not match the first. */
export function differs(password: string, again: string): boolean {
  return again !== "" && again !== password;
}
