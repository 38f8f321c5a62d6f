import { useEffect, useState } from "react";
import { api, call, session } from "./api/client";
import { Link, Router, matchPath, navigate, useLocation } from "./lib/router";
import { useSubscription } from "./lib/hooks";
import { Loading } from "./components/ui";
import { ConfirmEmail, ForgotPassword, Login, ResetPassword, Signup } from "./pages/Auth";
import { Generate } from "./pages/Generate";
import { MyImages } from "./pages/MyImages";
import { Gallery } from "./pages/Gallery";
import { ImageDetail } from "./pages/ImageDetail";
import { Artist } from "./pages/Artist";
import { CollectionDetail, Collections } from "./pages/Collections";
import { Credits } from "./pages/Credits";
import { Pricing } from "./pages/Pricing";
import { Developer } from "./pages/Developer";
import { History } from "./pages/History";
import { Support } from "./pages/Support";
import { Account } from "./pages/Account";

/** Pages that need a signed-in person; the others work for anyone. */
const PRIVATE = ["/generate", "/images", "/history", "/collections", "/credits", "/developer", "/support", "/account"];

function Page() {
  const { path } = useLocation();
  const signedIn = session.user !== null;
  if (PRIVATE.includes(path) && !signedIn) {
    return (
      <section>
        <h1>Sign in to continue</h1>
        <p>
          <Link to={`/login?next=${encodeURIComponent(path)}`}>Sign in</Link> or{" "}
          <Link to={`/signup?next=${encodeURIComponent(path)}`}>create an account</Link> — new accounts get free credits.
        </p>
      </section>
    );
  }
  if (path === "/" || path === "/gallery") return <Gallery />;
  if (path === "/login") return <Login />;
  if (path === "/signup") return <Signup />;
  if (path === "/forgot-password") return <ForgotPassword />;
  if (path === "/reset-password") return <ResetPassword />;
  if (path === "/confirm-email") return <ConfirmEmail />;
  if (path === "/generate") return <Generate />;
  if (path === "/images") return <MyImages />;
  if (path === "/history") return <History />;
  if (path === "/collections") return <Collections />;
  if (path === "/credits") return <Credits />;
  if (path === "/pricing") return <Pricing />;
  if (path === "/developer") return <Developer />;
  if (path === "/support") return <Support />;
  if (path === "/account") return <Account />;
  let params = matchPath("/images/:id", path);
  if (params?.id) return <ImageDetail id={params.id} />;
  params = matchPath("/u/:username", path);
  if (params?.username) return <Artist username={params.username} />;
  params = matchPath("/collections/:id", path);
  if (params?.id) return <CollectionDetail id={params.id} />;
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is nothing at this address. <Link to="/">Go to the gallery</Link>.
      </p>
    </section>
  );
}

function Nav() {
  const user = session.user;
  const { path } = useLocation();
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [path]);
  const item = (to: string, label: string) => (
    <li>
      <Link to={to} aria-current={path === to ? "page" : undefined}>
        {label}
      </Link>
    </li>
  );
  const logout = async () => {
    await api.POST("/v1/auth/logout", { body: {} }).catch(() => undefined);
    session.clear();
    navigate("/");
  };
  return (
    <header className="top">
      <Link to="/" className="brand">
        Easel
      </Link>
      <button type="button" className="menu" aria-expanded={open} aria-controls="nav" onClick={() => setOpen(!open)}>
        Menu
      </button>
      <nav id="nav" aria-label="Main" className={open ? "open" : ""}>
        <ul>
          {item("/", "Gallery")}
          {user && item("/generate", "Generate")}
          {user && item("/images", "My images")}
          {user && item("/history", "History")}
          {user && item("/collections", "Collections")}
          {user && item("/credits", "Credits")}
          {item("/pricing", "Pricing")}
          {user && item("/developer", "Developer")}
          {user?.role === "admin" && item("/support", "Support")}
        </ul>
        <div className="account">
          {user ? (
            <>
              <Link to={`/u/${user.username}`}>@{user.username}</Link>
              <Link to="/account" aria-current={path === "/account" ? "page" : undefined}>
                Account
              </Link>
              <button type="button" className="link" onClick={() => void logout()}>
                Sign out
              </button>
            </>
          ) : (
            <>
              <Link to="/login">Sign in</Link>
              <Link to="/signup" className="button small">
                Sign up
              </Link>
            </>
          )}
        </div>
      </nav>
    </header>
  );
}

export function App() {
  useSubscription((listener) => session.subscribe(listener));
  const [ready, setReady] = useState(false);
  useEffect(() => {
    // A returning visitor: the refresh cookie, if any, signs them in silently.
    void session.refresh().then(async (ok) => {
      if (ok) {
        const me = await call(api.GET("/v1/me")).catch(() => null);
        if (me) session.setUser(me);
      }
      setReady(true);
    });
  }, []);
  return (
    <Router>
      <Nav />
      <main>{ready ? <Page /> : <Loading />}</main>
    </Router>
  );
}
