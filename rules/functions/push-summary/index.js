// A Node handler: sums up a GitHub push for a chat message.
exports.handler = async (event, context) => {
  const commits = event.detail.commits || [];
  const branch = (event.detail.ref || "").replace("refs/heads/", "");
  const text = `${commits.length} commit(s) pushed to ${branch} by ${event.detail.pusher?.name}`;
  console.log(text);
  return { text, requestId: context.awsRequestId };
};
