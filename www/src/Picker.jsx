const USERS = ['alice', 'bob', 'carol'];

/** Without `?user=…`: pick who to be (open two tabs as two users to chat). */
export function Picker() {
  return (
    <div className="picker">
      <h1>
        sockline <small>demo</small>
      </h1>
      <p>Log in as (the server's <code>/dev/token</code> issues the token):</p>
      <ul>
        {USERS.map((u) => (
          <li key={u}>
            <a href={`?user=${u}`}>{u}</a>
          </li>
        ))}
      </ul>
      <form action="" method="get">
        <input name="user" placeholder="or any name" aria-label="user name" required />
        <button type="submit">Log in</button>
      </form>
    </div>
  );
}
