import { api, call } from "../api/client";
import { credits } from "../api/problem";
import { Empty, ErrorBox, Loading, LoadMore } from "../components/ui";
import { useLoad, usePaged } from "../lib/hooks";
import { dateTime, entryKind, fromNow, signed } from "../lib/format";
import { Link } from "../lib/router";

export function Credits() {
  const balance = useLoad(() => call(api.GET("/v1/credits")), []);
  const history = usePaged(
    (cursor) => call(api.GET("/v1/credits/transactions", { params: { query: { cursor, limit: 50 } } })),
    [],
  );
  return (
    <section>
      <h1>Credits</h1>
      <ErrorBox error={balance.error} onRetry={balance.reload} />
      {balance.data ? (
        <div className="balance">
          <div>
            <span className="big" data-testid="balance-total">
              {balance.data.total}
            </span>
            <span className="muted"> credits</span>
          </div>
          <dl className="row">
            <div>
              <dt>Free</dt>
              <dd data-testid="balance-free">{balance.data.free}</dd>
            </div>
            <div>
              <dt>Purchased</dt>
              <dd data-testid="balance-purchased">{balance.data.purchased}</dd>
            </div>
            <div>
              <dt>Next daily grant</dt>
              <dd title={dateTime(balance.data.next_daily_grant_at)}>
                {credits(balance.data.daily_grant)} {fromNow(balance.data.next_daily_grant_at)}
              </dd>
            </div>
          </dl>
          {balance.data.owing && (
            <p className="error" role="alert">
              Your balance is below zero after a refund or dispute. <Link to="/pricing">Buy credits</Link> to continue.
            </p>
          )}
          <p className="muted small">
            Free credits are spent first; unused daily credits expire at the next grant. <Link to="/pricing">Buy more</Link>.
          </p>
        </div>
      ) : (
        !balance.error && <Loading />
      )}
      <h2>History</h2>
      <ErrorBox error={history.error} onRetry={history.more} />
      {history.items.length > 0 && (
        <table className="ledger">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">What</th>
              <th scope="col">Change</th>
              <th scope="col">Balance after</th>
            </tr>
          </thead>
          <tbody>
            {history.items.map((t) => (
              <tr key={t.id}>
                <td>{dateTime(t.created_at)}</td>
                <td>
                  {entryKind(t.kind)}
                  {t.reason && <span className="muted small"> — {t.reason}</span>}
                </td>
                <td className={t.delta < 0 ? "neg" : "pos"}>{signed(t.delta)}</td>
                <td>{t.free_after + t.purchased_after}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {history.loading && <Loading />}
      {!history.loading && history.items.length === 0 && !history.error && <Empty>No transactions yet.</Empty>}
      <LoadMore list={history} />
    </section>
  );
}
