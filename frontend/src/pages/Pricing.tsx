import { useEffect, useState } from "react";
import { api, call, idempotencyKey, session } from "../api/client";
import { credits } from "../api/problem";
import type { components } from "../api/schema";
import { ErrorBox, Loading } from "../components/ui";
import { useLoad } from "../lib/hooks";
import { money } from "../lib/format";
import { Link, navigate, useLocation } from "../lib/router";

type Package = components["schemas"]["Package"];
type Purchase = components["schemas"]["Purchase"];

export function Pricing() {
  const { query } = useLocation();
  const packages = useLoad(() => call(api.GET("/v1/billing/packages")), []);
  const [error, setError] = useState<unknown>();
  const [buying, setBuying] = useState<string>();
  const checkout = query.get("checkout");
  const purchaseId = query.get("purchase");

  const buy = async (pkg: Package) => {
    if (!session.user) {
      navigate(`/login?next=${encodeURIComponent("/pricing")}`);
      return;
    }
    setBuying(pkg.id);
    setError(undefined);
    try {
      const started = await call(
        api.POST("/v1/billing/checkout", {
          body: { package_id: pkg.id },
          params: { header: { "Idempotency-Key": idempotencyKey() } },
        }),
      );
      if (packages.data?.dev_payments && started.checkout_url.includes("/dev-complete")) {
        // Development payments: complete the checkout here, through the same grant code.
        await call(api.POST("/v1/billing/purchases/{id}/dev-complete", { params: { path: { id: started.purchase_id } } }));
        navigate(`/pricing?checkout=success&purchase=${started.purchase_id}`);
      } else {
        window.location.assign(started.checkout_url);
      }
    } catch (e) {
      setError(e);
    } finally {
      setBuying(undefined);
    }
  };

  return (
    <section>
      <h1>Pricing</h1>
      {checkout === "success" && purchaseId && <PurchaseResult id={purchaseId} />}
      {checkout === "canceled" && <p className="notice">Checkout canceled. Nothing was charged.</p>}
      <ErrorBox error={packages.error ?? error} />
      {!packages.data && !packages.error && <Loading />}
      {packages.data && !packages.data.payments_configured && (
        <p className="notice" role="note">
          Payments are not configured on this server, so credits can't be bought here. The daily free credits still arrive
          every day.
        </p>
      )}
      {packages.data?.dev_payments && (
        <p className="notice" role="note">
          Development payments are on: Buy completes at once with no card and no charge.
        </p>
      )}
      <ul className="cards packages">
        {packages.data?.data.map((pkg) => (
          <li key={pkg.id} className="card">
            <h2>{pkg.label}</h2>
            <p className="big">{money(pkg.price_cents, pkg.currency)}</p>
            <p>
              {credits(pkg.credits)}
              {(pkg.bonus_credits ?? 0) > 0 && <strong> + {pkg.bonus_credits} bonus</strong>}
            </p>
            <button
              type="button"
              disabled={!packages.data?.payments_configured || buying !== undefined}
              onClick={() => void buy(pkg)}
              aria-label={`Buy ${pkg.label}`}
            >
              {buying === pkg.id ? "Opening checkout…" : "Buy"}
            </button>
          </li>
        ))}
      </ul>
      <p className="muted small">Purchased credits never expire and unlock Pro models.</p>
    </section>
  );
}

/** After checkout: waits for the payment to be confirmed (the webhook), then shows the credits. */
function PurchaseResult({ id }: { id: string }) {
  const [purchase, setPurchase] = useState<Purchase>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let live = true;
    let tries = 0;
    const poll = async () => {
      try {
        const page = await call(api.GET("/v1/billing/purchases", { params: { query: { limit: 20 } } }));
        const found = page.data.find((p) => p.id === id);
        if (!live) return;
        setPurchase(found);
        if (found?.status === "pending" && tries++ < 60) setTimeout(() => void poll(), 2_000);
      } catch (e) {
        if (live) setError(e);
      }
    };
    void poll();
    return () => {
      live = false;
    };
  }, [id]);
  const balance = useLoad(() => call(api.GET("/v1/credits")), [purchase?.status]);
  if (error) return <ErrorBox error={error} />;
  if (!purchase || purchase.status === "pending") {
    return (
      <p className="notice" role="status">
        Thank you! Waiting for the payment to be confirmed…
      </p>
    );
  }
  if (purchase.status !== "paid") {
    return (
      <p className="error" role="alert">
        The payment {purchase.status === "expired" ? "expired" : "failed"}. Nothing was charged.
      </p>
    );
  }
  return (
    <p className="success" role="status" data-testid="purchase-success">
      Payment received: {credits(purchase.credits_granted)} added.
      {balance.data && <> Your balance is now {credits(balance.data.total)}.</>} <Link to="/generate">Start generating</Link>.
    </p>
  );
}
